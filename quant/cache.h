// The analysis cache: Hessian traces, dependency measurements and calibration ranges stored as JSON,
// keyed by a hash of everything they depend on (model name, weights identity, data indices, settings).
// A changed input gives another key, hence a recomputation.
//
// A damaged entry is not an error: a file that is not JSON (truncated, empty, garbled), lacks its fields,
// stores inputs that do not match its key (hash collision, hand edit), or holds a payload its decoder refuses
// (wrong types, values out of range, sizes that do not match the model) is reported through the warning
// callback, naming the file and what is wrong, then recomputed and overwritten. Errors stay errors where the
// cache cannot work: an entry that is not a regular file (a FIFO, a folder: it could not be replaced either)
// and a cache folder that cannot be created or written.
#pragma once
#include <cstdint>
#include <exception>
#include <functional>
#include <new>
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
  // Receives one message per damaged entry (it names the file). Without one, the message goes to stderr.
  using Warn = std::function<void(const std::string&)>;
  explicit AnalysisCache(std::string dir, Warn warn = {}) : dir_(std::move(dir)), warn_(std::move(warn)) {}
  const std::string& dir() const { return dir_; }  // empty: no cache
  const Warn& warn() const { return warn_; }
  std::string path_for(const std::string& kind, const std::string& key) const;  // DIR/KIND-KEY.json
  // The stored payload, or nullopt when absent, or damaged (reported, see the top of this file). Throws
  // naming the entry when it exists but is not a regular file.
  std::optional<nlohmann::json> load(const std::string& kind, const nlohmann::json& inputs) const;
  void store(const std::string& kind, const nlohmann::json& inputs, const nlohmann::json& payload) const;

  // Calls use(payload) with the stored payload and returns true; false when there is none. When `use` throws
  // (the payload is malformed for it), the entry is reported as damaged and false is returned: the caller
  // recomputes, and its next store overwrites the entry. `use` must leave no partial effect when it throws.
  template <class Use>
  bool use_stored(const std::string& kind, const nlohmann::json& inputs, Use use) const {
    const std::optional<nlohmann::json> c = load(kind, inputs);
    if (!c) return false;
    try {
      use(*c);
      return true;
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& e) {
      damaged(kind, inputs, e.what());
      return false;
    }
  }

  // The one load-or-compute-and-store step of every cached analysis: the stored payload decoded by `from`
  // when present and well-formed, else compute() encoded by `to` and stored (over a damaged entry). `from`
  // throws on a payload it refuses, including one whose sizes do not fit the caller's model. *hit tells
  // which happened.
  template <class T, class Compute, class To, class From>
  T cached(const std::string& kind, const nlohmann::json& inputs, Compute compute, To to, From from,
           bool* hit = nullptr) const {
    std::optional<T> stored;
    if (use_stored(kind, inputs, [&](const nlohmann::json& j) { stored.emplace(from(j)); })) {
      if (hit) *hit = true;
      return std::move(*stored);
    }
    if (hit) *hit = false;
    T v = compute();
    store(kind, inputs, to(v));
    return v;
  }

 private:
  // Reports the entry of (kind, inputs) as damaged for `reason`; it will be recomputed and overwritten.
  void damaged(const std::string& kind, const nlohmann::json& inputs, const std::string& reason) const;
  std::string dir_;
  Warn warn_;
};

// JSON forms of the cached results (exact round trip; doubles are written with full precision).
nlohmann::json to_json(const HutchinsonResult& r);
HutchinsonResult hutchinson_from_json(const nlohmann::json& j);
nlohmann::json to_json(const Calibration& c);
Calibration calibration_from_json(const nlohmann::json& j);
nlohmann::json to_json(const DependencyResult& d);
DependencyResult dependency_from_json(const nlohmann::json& j);

}  // namespace mpq::quant
