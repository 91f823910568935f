// The analysis cache: Hessian traces, dependency measurements and calibration ranges stored as JSON,
// keyed by a hash of everything they depend on (model name, weights identity, data indices, settings).
// A changed input gives another key, hence a recomputation; an entry whose stored inputs do not match its
// key (hash collision, hand edit) is ignored.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "quant/dependency.h"
#include "quant/hessian.h"
#include "quant/observers.h"

namespace mpq::quant {

// Identity of a weights file without reading all of it: path, size, mtime and an FNV-1a 64 hash of the
// first and last MiB (the whole file when smaller than 2 MiB).
struct WeightsId {
  std::string path;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  std::string head_tail_hash;  // 16 hex digits
  nlohmann::json to_json() const;
  bool same_content(const WeightsId& o) const { return size == o.size && head_tail_hash == o.head_tail_hash; }
};
WeightsId weights_identity(const std::string& path);  // throws naming the path when it cannot be read

uint64_t fnv1a64(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull);
std::string hex64(uint64_t v);

// The key: 16 hex digits of FNV-1a 64 over the canonical dump of
// {"model", "weights" (WeightsId), "indices", "settings"}.
nlohmann::json analysis_inputs(const std::string& model, const WeightsId& w, const std::vector<int64_t>& indices,
                               const nlohmann::json& settings);
std::string analysis_key(const nlohmann::json& inputs);

// An empty folder name: no cache (load finds nothing, store keeps nothing).
class AnalysisCache {
 public:
  explicit AnalysisCache(std::string dir) : dir_(std::move(dir)) {}
  const std::string& dir() const { return dir_; }                               // empty: no cache
  std::string path_for(const std::string& kind, const std::string& key) const;  // DIR/KIND-KEY.json
  // The stored payload, or nullopt when absent / stale (stored inputs differ from `inputs`).
  std::optional<nlohmann::json> load(const std::string& kind, const nlohmann::json& inputs) const;
  void store(const std::string& kind, const nlohmann::json& inputs, const nlohmann::json& payload) const;

  // The one load-or-compute-and-store step of every cached analysis: the stored payload decoded by `from`
  // when present, else compute() encoded by `to` and stored. *hit tells which happened.
  template <class T, class Compute, class To, class From>
  T cached(const std::string& kind, const nlohmann::json& inputs, Compute compute, To to, From from,
           bool* hit = nullptr) const {
    if (auto c = load(kind, inputs)) {
      if (hit) *hit = true;
      return from(*c);
    }
    if (hit) *hit = false;
    T v = compute();
    store(kind, inputs, to(v));
    return v;
  }

 private:
  std::string dir_;
};

// JSON forms of the cached results (exact round trip; doubles are written with full precision).
nlohmann::json to_json(const HutchinsonResult& r);
HutchinsonResult hutchinson_from_json(const nlohmann::json& j);
nlohmann::json to_json(const Calibration& c);
Calibration calibration_from_json(const nlohmann::json& j);
nlohmann::json to_json(const DependencyResult& d);
DependencyResult dependency_from_json(const nlohmann::json& j);

}  // namespace mpq::quant
