// Bisection search over an ordering (method.md, pipeline step 4), the exhaustive sweep it is compared to,
// and the latency / memory accounting of a configuration.
//
// Start: every layer at `start` (fp16). Stage 1: k8 = the largest k in [0, N] such that lowering the first
// k layers of order8 to int8 keeps the metric inside the range; bisection on [lo, hi) with lo = 0 known
// good (the baseline) and hi = N + 1 assumed bad, one evaluation per probe: ceil(log2(N + 1)) probes + the
// baseline. Stage 2: the same over k4 in [0, k8] for int4, walking order4 restricted to the int8 layers.
// Bisection presumes the metric is monotone in k; every pair of probes of a stage where MORE lowered layers
// scored HIGHER than fewer (by more than `monotone_tol`) is reported as a warning. The final configuration
// is checked once more: with `recheck` (e.g. another split or a fresh run) it is evaluated again, else the
// memoised probe value is reused (the evaluators are deterministic) and the report says so.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "models/model.h"
#include "quant/fake_quant.h"

namespace mpq::quant {

// The user's accuracy range; exactly one of the two is set (>= 0). Metric units are the evaluator's
// (top-1 as a fraction: max_drop 0.001 = 0.1 percentage point).
struct AccuracyRange {
  double max_drop = -1;      // metric >= baseline - max_drop
  double min_relative = -1;  // metric >= baseline * min_relative
  bool ok(double metric, double baseline) const;
  std::string describe() const;
  void validate() const;  // throws unless exactly one is set
};

struct Probe {
  int stage = 0;  // 0 baseline, 1 int8, 2 int4, 3 final check, 4 sweep
  int k = 0;      // leading layers lowered in this stage
  double metric = 0;
  bool ok = false;
};

using ConfigMetric = std::function<double(const std::vector<Precision>&)>;  // [N] precisions -> metric

struct SearchOptions {
  AccuracyRange range;
  Precision start = Precision::fp16;
  bool stage2 = true;                 // int4 stage
  double monotone_tol = 0;            // metric rise tolerated between probes before a warning
  ConfigMetric recheck;               // optional independent re-evaluation of the final configuration
  std::optional<double> max_bytes;    // optional limit on the weight bytes (weight_bytes below)
  std::vector<int64_t> weight_numel;  // [N], needed with max_bytes
};

struct SearchResult {
  std::vector<Precision> precisions;  // [N] final
  int k8 = 0, k4 = 0;
  double baseline = 0;      // metric of the all-`start` configuration
  double final_metric = 0;  // re-check value
  bool final_ok = false;
  bool final_rechecked = false;       // true: evaluated again by `recheck`; false: memoised probe
  std::vector<Probe> probes;          // in evaluation order
  int64_t evaluations = 0;            // metric evaluations (the recheck's one included when fresh)
  std::vector<std::string> warnings;  // non-monotone probes, memory limit
  double weight_bytes = 0;            // of the final configuration (when weight_numel is given)
  bool memory_ok = true;
  nlohmann::json to_json() const;
};

// order8 / order4: permutations of [0, N) (least sensitive first).
SearchResult bisection_search(int n, const std::vector<int>& order8, const std::vector<int>& order4,
                              const ConfigMetric& metric, const SearchOptions& opt);

// Exhaustive: metric at every k in [0, N] for `target` along `order` over `base` ([N]); returns the probes
// (k ascending). best_k: largest k inside the range (range measured against k = 0); prefix_k: largest k
// with every k' <= k inside the range (what an ideal monotone bisection finds).
struct SweepResult {
  std::vector<Probe> probes;
  int best_k = 0, prefix_k = 0;
};
SweepResult sweep_k(const std::vector<Precision>& base, const std::vector<int>& order, Precision target,
                    const ConfigMetric& metric, const AccuracyRange& range);

// Weight bytes: numel * bits / 8 (fp32 4, fp16 2, int8 1, int4 0.5 bytes per weight; per-channel / group
// scales not counted).
double weight_bytes(const std::vector<int64_t>& numel, const std::vector<Precision>& p);

// Per-layer latency (ms) by precision. `measured` is false for the MAC-based placeholder, whose `source`
// says so; reports must not call such numbers measured.
struct LatencyTable {
  std::string source;
  bool measured = false;
  std::map<std::string, std::map<Precision, double>> ms;  // layer -> precision -> ms (batch 1)
  nlohmann::json to_json() const;
};
// {"source": "...", "measured": true|false, "layers": {"name": {"fp16": ms, "int8": ms, ...}}}
LatencyTable load_latency_table(const std::string& path);
LatencyTable latency_table_from_json(const nlohmann::json& j, const std::string& what);
// ESTIMATE, not a measurement: ms = macs / rate(p) with assumed rates fp32 / fp16 25, int8 50, int4 55 GMAC/s.
LatencyTable mac_estimate_latency_table(const std::vector<models::QuantLayer>& layers);
// Sum over layers of table[layer][precision]; throws naming a missing layer / precision.
double config_latency_ms(const LatencyTable& t, const std::vector<std::string>& layers,
                         const std::vector<Precision>& p);

}  // namespace mpq::quant
