// Tiny argument parser and command registry for the mpq CLI. Each subcommand lives in its own
// tools/cmd_*.cpp and registers itself with a static Registrar object.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace mpq::cli {

// --key value and --flag options; positional arguments are rejected (all options are named).
class Args {
 public:
  Args(int argc, char** argv, int first);
  bool has(const std::string& key) const;
  std::string get(const std::string& key, const std::string& def = "") const;
  std::string require(const std::string& key) const;  // throws mpq::Error naming the option
  int get_int(const std::string& key, int def) const;
  double get_double(const std::string& key, double def) const;
  bool flag(const std::string& key) const;  // --key present without a value
  // Throws naming the first option not in `known` (catches typos such as --limt).
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

}  // namespace mpq::cli
