#include "tools/cli.h"

#include <cstdlib>

#include "core/error.h"

namespace mpq::cli {

Args::Args(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) fail("unexpected argument '{}': options are --name value", a);
    a = a.substr(2);
    const auto eq = a.find('=');
    if (eq != std::string::npos) {
      kv_[a.substr(0, eq)] = a.substr(eq + 1);
    } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
      kv_[a] = argv[++i];
    } else {
      kv_[a] = "";
    }
  }
}

bool Args::has(const std::string& k) const { return kv_.count(k) > 0; }
std::string Args::get(const std::string& k, const std::string& def) const {
  auto it = kv_.find(k);
  return it == kv_.end() ? def : it->second;
}
std::string Args::require(const std::string& k) const {
  auto it = kv_.find(k);
  if (it == kv_.end() || it->second.empty()) fail("missing required option --{}", k);
  return it->second;
}
int Args::get_int(const std::string& k, int def) const {
  if (!has(k)) return def;
  const std::string v = get(k);
  char* end = nullptr;
  const long r = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end) fail("option --{} expects an integer, got '{}'", k, v);
  return int(r);
}
double Args::get_double(const std::string& k, double def) const {
  if (!has(k)) return def;
  const std::string v = get(k);
  char* end = nullptr;
  const double r = std::strtod(v.c_str(), &end);
  if (v.empty() || *end) fail("option --{} expects a number, got '{}'", k, v);
  return r;
}
bool Args::flag(const std::string& k) const { return has(k); }
void Args::check_known(const std::vector<std::string>& known) const {
  for (const auto& [k, v] : kv_) {
    bool ok = false;
    for (const auto& n : known) ok = ok || n == k;
    if (!ok) fail("unknown option --{}", k);
  }
}

std::map<std::string, Command>& registry() {
  static std::map<std::string, Command> r;
  return r;
}

}  // namespace mpq::cli
