// Progress of a long phase of a command on stderr, with an ETA (the remaining steps are assumed to cost
// what the finished ones did on average):
//   on a terminal: one line redrawn in place  "\r[phase] done/total  elapsed 12 s  ETA 30 s  note"
//   otherwise (a log file, a pipe): plain lines, at most one per 10 % of the total or per 10 s, so logs stay
//   readable and carry no carriage returns;
//   --quiet: nothing (errors and warnings still print).
// main() sets the mode once (console()).
#pragma once
#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

#include "core/precision.h"

namespace mpq::cli {

struct ConsoleMode {
  bool quiet = false;  // --quiet
  bool tty = false;    // stderr is a terminal
};
ConsoleMode& console();

class Progress {
 public:
  Progress(std::string phase, int64_t total)
      : phase_(std::move(phase)), total_(total), t0_(std::chrono::steady_clock::now()) {}
  void set_total(int64_t total) { total_ = total; }
  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }
  void update(int64_t done, const std::string& note = "");
  // Ends the line (when anything was redrawn) and returns the phase's seconds.
  double finish();

 private:
  std::string phase_;
  int64_t total_;
  std::chrono::steady_clock::time_point t0_;
  bool printed_ = false;
  double last_line_s_ = -1;  // plain mode: when the last line was printed
  int64_t last_decile_ = -1;
};

// A progress callback for native::measure_latency_table: one Progress per precision.
std::function<void(Precision, int, int, double)> progress_printer(const std::string& model);

}  // namespace mpq::cli
