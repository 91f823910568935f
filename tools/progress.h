// One-line progress with an ETA on stderr for a long phase of a command:
//   "\r[phase] done/total  elapsed 12 s  ETA 30 s  note"
// The ETA assumes the remaining steps cost what the finished ones did on average.
#pragma once
#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace mpq::cli {

class Progress {
 public:
  Progress(std::string phase, int64_t total)
      : phase_(std::move(phase)), total_(total), t0_(std::chrono::steady_clock::now()) {}
  void set_total(int64_t total) { total_ = total; }
  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }
  void update(int64_t done, const std::string& note = "") {
    const double el = elapsed();
    const std::string eta =
        done > 0 && total_ >= done ? fmt::format("{:.0f} s", el / double(done) * double(total_ - done)) : "?";
    fmt::print(stderr, "\r[{}] {}/{}  elapsed {:.0f} s  ETA {}  {}   ", phase_, done, total_, el, eta, note);
    std::fflush(stderr);
    printed_ = true;
  }
  // Ends the line (when anything was printed) and returns the phase's seconds.
  double finish() {
    if (printed_) fmt::print(stderr, "\n");
    printed_ = false;
    return elapsed();
  }

 private:
  std::string phase_;
  int64_t total_;
  std::chrono::steady_clock::time_point t0_;
  bool printed_ = false;
};

}  // namespace mpq::cli
