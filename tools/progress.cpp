#include "tools/progress.h"

#include <map>
#include <memory>

namespace mpq::cli {

ConsoleMode& console() {
  static ConsoleMode m;
  return m;
}

void Progress::update(int64_t done, const std::string& note) {
  const ConsoleMode& c = console();
  if (c.quiet) return;
  const double el = elapsed();
  const std::string eta =
      done > 0 && total_ >= done ? fmt::format("{:.0f} s", el / double(done) * double(total_ - done)) : "?";
  const std::string line = fmt::format("[{}] {}/{}  elapsed {:.0f} s  ETA {}  {}", phase_, done, total_, el, eta, note);
  if (c.tty) {
    fmt::print(stderr, "\r{}   ", line);
    std::fflush(stderr);
    printed_ = true;
    return;
  }
  const int64_t decile = total_ > 0 ? done * 10 / total_ : -1;
  if (decile != last_decile_ || el - last_line_s_ >= 10 || done == total_) {
    fmt::print(stderr, "{}\n", line);
    last_decile_ = decile;
    last_line_s_ = el;
  }
}

double Progress::finish() {
  if (printed_) fmt::print(stderr, "\n");
  printed_ = false;
  return elapsed();
}

std::function<void(Precision, int, int, double)> progress_printer(const std::string& model) {
  auto bars = std::make_shared<std::map<Precision, std::unique_ptr<Progress>>>();
  return [bars, model](Precision p, int run, int runs, double ms) {
    auto& b = (*bars)[p];
    if (!b) b = std::make_unique<Progress>(fmt::format("profile {} {}", model, precision_name(p)), runs);
    b->update(run, fmt::format("{:.2f} ms", ms));
    if (run == runs) b->finish();
  };
}

}  // namespace mpq::cli
