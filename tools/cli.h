// The mpq CLI's argument parser and command registry. Each subcommand lives in its own tools/cmd_*.cpp and
// registers itself with a static Registrar object; a command parses its flags into a library request,
// calls the library and prints the result.
//
// Conventions (README "Commands"):
//   - options are named: --key value, --key=value, or a bare --flag; positional arguments are refused;
//   - an option given twice is refused (the last one silently winning hid typos in long command lines);
//   - numbers are parsed whole (no trailing junk) and range-checked, the message names the flag and range;
//   - exit status: 0 success, 1 runtime error (a file, the data, the model), 2 usage error (UsageError:
//     unknown command or option, bad or missing value), 3 `mpq search` finished but its chosen configuration
//     is outside the accuracy range on the test split.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"

namespace mpq::cli {

inline constexpr int kExitRuntimeError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitOutsideRange = 3;

// A request the command line cannot express: exit status 2.
struct UsageError : Error {
  using Error::Error;
};
template <class... Args>
[[noreturn]] void usage_fail(fmt::format_string<Args...> f, Args&&... args) {
  throw UsageError(fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void usage_check(bool cond, fmt::format_string<Args...> f, Args&&... args) {
  if (!cond) throw UsageError(fmt::format(f, std::forward<Args>(args)...));
}

class Args {
 public:
  // Parses argv[first..argc); throws UsageError on a positional argument or a repeated option.
  Args(int argc, char** argv, int first);
  bool has(const std::string& key) const;
  std::string get(const std::string& key, const std::string& def = "") const;
  std::string require(const std::string& key) const;  // UsageError naming the option when absent / empty
  // Integer in [lo, hi] (UsageError naming the flag, the value and the range otherwise); def when absent.
  int64_t get_int(const std::string& key, int64_t def, int64_t lo, int64_t hi) const;
  // Finite number in [lo, hi]; def when absent.
  double get_double(const std::string& key, double def, double lo, double hi) const;
  bool flag(const std::string& key) const;  // --key present (a bare flag)
  // One of `choices` (UsageError listing them otherwise); def when absent.
  std::string get_choice(const std::string& key, const std::string& def, const std::vector<std::string>& choices) const;
  // UsageError naming the first option not in `known` (catches typos such as --limt). Every command also
  // accepts the global options --threads, --quiet and --help.
  void check_known(const std::vector<std::string>& known) const;

 private:
  std::map<std::string, std::string> kv_;
};

struct Command {
  std::string name, summary, usage;
  std::function<int(const Args&)> run;
};
std::map<std::string, Command>& registry();
struct Registrar {
  explicit Registrar(Command c) { registry()[c.name] = std::move(c); }
};

// The largest --threads accepted: more OpenMP threads than this only oversubscribes (and libgomp aborts
// creating tens of thousands).
inline constexpr int64_t kMaxThreads = 1024;

}  // namespace mpq::cli
