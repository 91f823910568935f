#include "quant/cache.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string_view>
#include <type_traits>

#include "core/error.h"
#include "core/file_io.h"
#include "quant/fake_quant.h"

namespace mpq::quant {

namespace fs = std::filesystem;
using nlohmann::json;

uint64_t fnv1a64(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

std::string hex64(uint64_t v) { return fmt::format("{:016x}", v); }

json WeightsId::to_json() const {
  return {{"path", path}, {"size", size}, {"mtime_ns", mtime_ns}, {"head_tail_fnv1a64", head_tail_hash}};
}

WeightsId weights_identity(const std::string& path) {
  std::error_code ec;
  check(fs::is_regular_file(path, ec), "weights '{}': not a readable file", path);
  WeightsId id;
  id.path = fs::absolute(path).lexically_normal().string();
  id.size = int64_t(fs::file_size(path));
  // stat's st_mtim counts from the Unix epoch; std::filesystem's file_time_type does not (libstdc++'s file
  // clock starts in 2174, so its count is negative today)
  struct stat st {};
  check(::stat(path.c_str(), &st) == 0, "weights '{}': cannot stat", path);
  id.mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + int64_t(st.st_mtim.tv_nsec);
  std::ifstream f(path, std::ios::binary);
  check(bool(f), "weights '{}': cannot open for reading", path);
  constexpr int64_t kMiB = int64_t(1) << 20;
  std::vector<char> buf(size_t(std::min(id.size, kMiB)));  // [<= 1 MiB]
  f.read(buf.data(), std::streamsize(buf.size()));
  uint64_t h = fnv1a64(buf.data(), buf.size());
  if (id.size > kMiB) {
    const int64_t tail_at = std::max(kMiB, id.size - kMiB);
    buf.resize(size_t(id.size - tail_at));
    f.seekg(std::streamoff(tail_at));
    f.read(buf.data(), std::streamsize(buf.size()));
    h = fnv1a64(buf.data(), buf.size(), h);
  }
  check(bool(f), "weights '{}': read failed", path);
  id.head_tail_hash = hex64(h);
  return id;
}

json analysis_inputs(const std::string& model, const WeightsId& w, const std::vector<int64_t>& indices,
                     const json& settings) {
  return {{"model", model}, {"weights", w.to_json()}, {"indices", indices}, {"settings", settings}};
}

std::string analysis_key(const json& inputs) {
  const std::string s = inputs.dump();  // nlohmann::json objects are key-sorted: a canonical dump
  return hex64(fnv1a64(s.data(), s.size()));
}

std::string AnalysisCache::path_for(const std::string& kind, const std::string& key) const {
  return (fs::path(dir_) / (kind + "-" + key + ".json")).string();
}

std::optional<json> AnalysisCache::load(const std::string& kind, const json& inputs) const {
  if (dir_.empty()) return std::nullopt;
  const std::string p = path_for(kind, analysis_key(inputs));
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::nullopt;  // not computed yet
    fail("analysis cache: cannot stat entry '{}': {}", p, std::strerror(errno));
  }
  // a FIFO would hang the read and could not be replaced by store: refused, not recomputed
  if (const std::string kind_of = non_regular_kind(p); !kind_of.empty())
    fail("analysis cache: entry '{}' is {}; only a regular file can be read or replaced", p, kind_of);
  json j;
  try {
    j = json::parse(read_text_file(p, kMaxJsonFileBytes, "analysis cache entry"));
  } catch (const std::exception& e) {  // unreadable, too large, not JSON (truncated, empty, garbled)
    damaged(kind, inputs, e.what());
    return std::nullopt;
  }
  if (!j.is_object() || !j.contains("inputs") || !j.contains("payload")) {
    damaged(kind, inputs, "not an object with fields 'inputs' and 'payload'");
    return std::nullopt;
  }
  if (j["inputs"] != inputs) {
    damaged(kind, inputs,
            "its stored inputs differ from the ones its name is the key of (edited, or a hash collision)");
    return std::nullopt;
  }
  return std::move(j["payload"]);
}

void AnalysisCache::damaged(const std::string& kind, const json& inputs, const std::string& reason) const {
  constexpr std::string_view prefix = "analysis cache: ";  // the decoders' messages start with it
  const std::string_view why = std::string_view(reason).starts_with(prefix)
                                   ? std::string_view(reason).substr(prefix.size())
                                   : std::string_view(reason);
  const std::string msg =
      fmt::format("analysis cache: entry '{}' is damaged ({}); recomputing it and overwriting the entry",
                  path_for(kind, analysis_key(inputs)), why);
  if (warn_)
    warn_(msg);
  else
    fmt::print(stderr, "warning: {}\n", msg);
}

void AnalysisCache::store(const std::string& kind, const json& inputs, const json& payload) const {
  if (dir_.empty()) return;
  create_output_dir(dir_);
  // a unique temporary file per writer, renamed over the entry: two searches sharing a cache never
  // interleave their writes (the later rename wins with a whole file)
  write_file_atomic(path_for(kind, analysis_key(inputs)),
                    json{{"kind", kind}, {"inputs", inputs}, {"payload", payload}}.dump(1) + "\n");
}

json to_json(const HutchinsonResult& r) {
  return {{"trace", r.trace}, {"std_error", r.std_error}, {"draws", r.draws}, {"converged", r.converged}};
}

namespace {
// A number field of a cached payload, range-checked before narrowing (nlohmann narrows with a plain cast,
// undefined behaviour out of range); errors name the kind and the field.
template <class T>
T number(const json& j, const char* key, const char* kind) {
  const json& v = j.at(key);
  if constexpr (std::is_integral_v<T>) {
    const bool fits = v.is_number_unsigned()  ? v.get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max())
                      : v.is_number_integer() ? v.get<int64_t>() >= int64_t(std::numeric_limits<T>::min()) &&
                                                    v.get<int64_t>() <= int64_t(std::numeric_limits<T>::max())
                                              : false;
    check(fits, "analysis cache: malformed {} payload: field '{}' is {}, not an integer in [{}, {}]", kind, key,
          v.dump(), std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
    return v.get<T>();
  } else {
    check(v.is_number() && std::isfinite(v.get<double>()) &&
              std::fabs(v.get<double>()) <= double(std::numeric_limits<T>::max()),
          "analysis cache: malformed {} payload: field '{}' is {}, not a finite number", kind, key, v.dump());
    return T(v.get<double>());
  }
}
}  // namespace

HutchinsonResult hutchinson_from_json(const json& j) {
  try {
    HutchinsonResult r;
    r.trace = j.at("trace").get<std::vector<double>>();
    r.std_error = j.at("std_error").get<std::vector<double>>();
    r.draws = number<int>(j, "draws", "traces");
    r.converged = j.at("converged").get<bool>();
    check(r.trace.size() == r.std_error.size(), "analysis cache: malformed traces payload: {} traces, {} std errors",
          r.trace.size(), r.std_error.size());
    return r;
  } catch (const json::exception& e) {
    fail("analysis cache: malformed traces payload: {}", e.what());
  }
}

json to_json(const Calibration& c) {
  json out = json::object();
  for (const auto& [layer, ops] : c)
    for (const auto& [op, ci] : ops)
      out[layer][std::to_string(op)] = {
          {"scale", ci.params.scale}, {"zero_point", ci.params.zero_point},   {"lo", ci.params.lo},
          {"hi", ci.params.hi},       {"observer", observer_name(ci.chosen)}, {"error", ci.error}};
  return out;
}

Calibration calibration_from_json(const json& j) {
  try {
    Calibration c;
    for (const auto& [layer, ops] : j.items())
      for (const auto& [op, v] : ops.items()) {
        CalibratedInput ci;
        ci.params.scale = number<float>(v, "scale", "calibration");
        ci.params.zero_point = number<int32_t>(v, "zero_point", "calibration");
        ci.params.lo = number<float>(v, "lo", "calibration");
        ci.params.hi = number<float>(v, "hi", "calibration");
        try {
          ci.chosen = parse_observer(v.at("observer").get<std::string>());
        } catch (const Error& e) {
          fail("analysis cache: malformed calibration payload: field 'observer': {}", e.what());
        }
        ci.error = v.at("error").get<std::map<std::string, double>>();
        check(op == "0" || op == "1", "analysis cache: calibration of layer '{}' has operand '{}' (0 or 1 expected)",
              layer, op);
        c[layer][op[0] - '0'] = ci;
      }
    return c;
  } catch (const json::exception& e) {
    fail("analysis cache: malformed calibration payload: {}", e.what());
  }
}

json to_json(const DependencyResult& d) {
  json pairs = json::array();
  for (const PairEffect& p : d.pairs)
    pairs.push_back({{"i", p.i}, {"j", p.j}, {"dl_pair", p.dl_pair}, {"interaction", p.interaction}});
  return {{"precision", precision_name(d.precision)},
          {"base", precision_name(d.base)},
          {"layers", d.layers},
          {"base_loss", d.base_loss},
          {"single", d.single},
          {"pairs", pairs},
          {"evaluations", d.evaluations},
          {"seconds", d.seconds}};
}

DependencyResult dependency_from_json(const json& j) {
  try {
    DependencyResult d;
    auto prec = [&](const char* key) {
      try {
        return parse_precision(j.at(key).get<std::string>());
      } catch (const Error& e) {
        fail("analysis cache: malformed dependencies payload: field '{}': {}", key, e.what());
      }
    };
    d.precision = prec("precision");
    d.base = prec("base");
    d.layers = j.at("layers").get<std::vector<std::string>>();
    d.base_loss = j.at("base_loss").get<double>();
    d.single = j.at("single").get<std::vector<double>>();
    check(d.single.size() == d.layers.size(),
          "analysis cache: malformed dependencies payload: {} single effects for {} layers", d.single.size(),
          d.layers.size());
    for (const auto& p : j.at("pairs")) {
      const PairEffect e{number<int>(p, "i", "dependencies"), number<int>(p, "j", "dependencies"),
                         number<double>(p, "dl_pair", "dependencies"),
                         number<double>(p, "interaction", "dependencies")};
      check(e.i >= 0 && e.j >= 0 && size_t(e.i) < d.layers.size() && size_t(e.j) < d.layers.size(),
            "analysis cache: malformed dependencies payload: pair ({}, {}) of {} layers", e.i, e.j, d.layers.size());
      d.pairs.push_back(e);
    }
    d.evaluations = number<int64_t>(j, "evaluations", "dependencies");
    d.seconds = j.at("seconds").get<double>();
    return d;
  } catch (const json::exception& e) {
    fail("analysis cache: malformed dependencies payload: {}", e.what());
  }
}

}  // namespace mpq::quant
