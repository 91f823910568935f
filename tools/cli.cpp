#include "tools/cli.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace mpq::cli {

Args::Args(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || a.size() == 2) usage_fail("unexpected argument '{}': options are --name value", a);
    a = a.substr(2);
    std::string key, value;
    const auto eq = a.find('=');
    if (eq != std::string::npos) {
      key = a.substr(0, eq), value = a.substr(eq + 1);
    } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
      key = a, value = argv[++i];
    } else {
      key = a;
    }
    usage_check(!key.empty(), "unexpected argument '--{}'", a);
    auto [it, fresh] = kv_.emplace(key, value);
    usage_check(fresh, "option --{} is given twice ('{}' and '{}')", key, it->second, value);
  }
}

bool Args::has(const std::string& k) const { return kv_.count(k) > 0; }
std::string Args::get(const std::string& k, const std::string& def) const {
  auto it = kv_.find(k);
  return it == kv_.end() ? def : it->second;
}
std::string Args::require(const std::string& k) const {
  auto it = kv_.find(k);
  if (it == kv_.end() || it->second.empty()) usage_fail("missing required option --{}", k);
  return it->second;
}
int64_t Args::get_int(const std::string& k, int64_t def, int64_t lo, int64_t hi) const {
  if (!has(k)) return def;
  const std::string v = get(k);
  char* end = nullptr;
  errno = 0;
  const long long r = std::strtoll(v.c_str(), &end, 10);
  usage_check(!v.empty() && *end == '\0', "option --{} expects an integer, got '{}'", k, v);
  usage_check(errno != ERANGE && r >= lo && r <= hi, "option --{} {} is out of range [{}, {}]", k, v, lo, hi);
  return int64_t(r);
}
double Args::get_double(const std::string& k, double def, double lo, double hi) const {
  if (!has(k)) return def;
  const std::string v = get(k);
  char* end = nullptr;
  const double r = std::strtod(v.c_str(), &end);
  usage_check(!v.empty() && *end == '\0' && std::isfinite(r), "option --{} expects a finite number, got '{}'", k, v);
  usage_check(r >= lo && r <= hi, "option --{} {} is out of range [{}, {}]", k, v, lo, hi);
  return r;
}
bool Args::flag(const std::string& k) const {
  auto it = kv_.find(k);
  if (it == kv_.end()) return false;
  usage_check(it->second.empty(), "option --{} is a flag and takes no value (got '{}')", k, it->second);
  return true;
}
std::string Args::get_choice(const std::string& k, const std::string& def,
                             const std::vector<std::string>& choices) const {
  const std::string v = get(k, def);
  std::string list;
  for (const std::string& c : choices) {
    if (c == v) return v;
    list += (list.empty() ? "" : ", ") + c;
  }
  usage_fail("option --{} '{}': expected one of {}", k, v, list);
}
void Args::check_known(const std::vector<std::string>& known) const {
  for (const auto& [k, v] : kv_) {
    bool ok = k == "threads" || k == "quiet" || k == "help";
    for (const auto& n : known) ok = ok || n == k;
    if (!ok) usage_fail("unknown option --{}", k);
  }
}

std::map<std::string, Command>& registry() {
  static std::map<std::string, Command> r;
  return r;
}

}  // namespace mpq::cli
