// Bisection search over an ordering (docs/method.md, pipeline step 4), the exhaustive sweep it is compared to,
// and the latency / memory accounting of a configuration.
//
// Start: every layer at `start` (fp16). Stage 1: k8 = the largest k in [0, N] such that lowering the first
// k layers of order8 to int8 keeps the metric inside the range: k = N is probed first (inside: done), else
// bisection on [lo, hi) with lo = 0 known good (the start, checked against the reference) and hi = N known
// bad, one evaluation per probe: at most 1 + ceil(log2(N)) probes + the start. Probing the end first costs
// one evaluation and keeps a dip in the middle of the ordering (real metrics on a few hundred samples are
// not monotone) from hiding an all-lowered configuration that is inside the range. Stage 2: the same over
// k4 in [0, k8] for int4, walking order4 restricted to the int8 layers. Bisection presumes the metric is
// monotone in k; every pair of probes of a stage where MORE lowered layers scored HIGHER than fewer (by more
// than `monotone_tol`), one of them outside the range, is reported as a warning (rises among probes all
// inside the range change nothing). The final configuration (see SearchOptions for how it is chosen among
// the candidates) is checked once more: with `recheck` (e.g. another split or a fresh run) it is evaluated
// again, else the memoised probe value is reused (the evaluators are deterministic) and the report says so.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/enum_table.h"
#include "models/model.h"
#include "quant/fake_quant.h"

namespace mpq::quant {

// The user's accuracy range, in the metric's units (the CLI passes percent), against a reference metric
// (the search's SearchOptions::reference, else the starting configuration's metric). Exactly one is set.
struct AccuracyRange {
  std::optional<double> max_drop;      // metric >= reference - max_drop      (>= 0, absolute points)
  std::optional<double> min_relative;  // metric >= reference * min_relative  (in (0, 1])
  bool ok(double metric, double reference) const;
  double threshold(double reference) const;  // the smallest metric inside the range
  std::string describe() const;
  void validate() const;  // throws unless exactly one is set and it is in its domain
};

struct Probe {
  int stage = 0;  // 0 baseline, 1 int8, 2 int4, 3 final check, 4 sweep, 5 / 6 fill to int8 / int4
  int k = 0;      // leading layers lowered in this stage (fill stages: the tried layer's 1-based position)
  double metric = 0;
  bool ok = false;
};

using ConfigMetric = std::function<double(const std::vector<Precision>&)>;  // [N] precisions -> metric
using ConfigValue = std::function<double(const std::vector<Precision>&)>;   // [N] precisions -> ms, bytes, ...

// Choosing the final configuration. The two bisections give k8max (stage 1) and k4max (stage 2, int4 among
// the first k8max int8 layers). Under the monotone assumption every configuration on the way is inside the
// range, so the candidates are
//   (k8, 0) for k8 in [0, k8max]   and   (k8max, k4) for k4 in [0, k4max];
// among those within max_bytes the search takes the one with the smallest `latency` (ties: fewer weight
// bytes, then more lowered layers), or with Objective::bytes the one with the fewest bytes (ties: smaller
// latency, then more lowered layers). Without either value it takes the most lowered one, (k8max, k4max). With
// a measured latency table the fastest need not be the most lowered (an int4 layer can be slower than its
// int8 version on a CPU). A candidate that was not a probe costs one more evaluation (the final check);
// if the final check fails, the fastest candidate that a probe verified inside the range is taken instead
// (with a warning). When no candidate fits max_bytes, the smallest one is kept with memory_ok = false.
// What the final choice optimises: the fastest configuration (ties: fewer bytes), or the smallest one (ties:
// faster). Both respect max_bytes.
enum class Objective { latency, bytes };
inline constexpr std::array<EnumName<Objective>, 2> kObjectiveNames{
    {{Objective::latency, "latency"}, {Objective::bytes, "bytes"}}};

struct SearchOptions {
  AccuracyRange range;
  Objective objective = Objective::latency;
  // The metric the range is measured against (e.g. the fp32 model's on the search split). Unset: the
  // starting configuration's. When set and the starting configuration itself is outside the range, the
  // search throws naming both values (the request cannot be met by any lowering).
  std::optional<double> reference;
  Precision start = Precision::fp16;
  bool stage2 = true;       // int4 stage
  double monotone_tol = 0;  // metric rise tolerated between probes before a warning
  ConfigMetric recheck;     // optional independent re-evaluation of the final configuration
  ConfigValue latency;      // optional per-configuration latency (ms) for the final choice
  // With the latency objective: candidates within (1 + latency_tolerance) of the fastest one's latency count
  // as equally fast, and among them the fewest bytes win (then the faster). 0 (default): the fastest, as in
  // the paper. Per-layer tables differ between int8 and int4 by less than their run-to-run noise on x86, so
  // with 0 the choice between them follows the noise of one measurement.
  double latency_tolerance = 0;
  std::optional<double> max_bytes;  // optional limit on the weight bytes (`bytes` below)
  ConfigValue bytes;                // stored bytes of a configuration; needed with max_bytes / objective bytes
  // Greedy completion after the bisections (off by default; the paper's search is the bisection alone): each
  // stage's order is walked once more and every layer the bisection left at the stage's source precision is
  // lowered alone on top of the result when that improves the objective and stays inside the range. The
  // ordering still decides which layer is tried first; the result is no longer a prefix of it. One
  // evaluation per layer tried, so the search split is consulted more often (a larger chance that noise
  // admits a layer: the test split judges the result).
  bool fill = false;
  std::string metric_name = "metric";  // used in messages
  // after every probe: the probe, evaluations so far, and the most evaluations this search can take
  std::function<void(const Probe&, int64_t done, int64_t max_total)> progress;
};

struct SearchResult {
  std::vector<Precision> precisions;  // [N] final
  int k8 = 0, k4 = 0;                 // of the final configuration
  int k8_max = 0, k4_max = 0;         // what the two bisections found
  double reference = 0;               // the metric the range is measured against
  double baseline = 0;                // metric of the all-`start` configuration
  double final_metric = 0;            // re-check value of the metric given (mpq search: its --confidence bound)
  bool final_ok = false;
  bool final_rechecked = false;       // true: evaluated again by `recheck`; false: memoised probe
  std::vector<Probe> probes;          // in evaluation order
  int64_t evaluations = 0;            // metric evaluations (the recheck's one included when fresh)
  std::vector<std::string> warnings;  // non-monotone probes, memory limit, fallbacks
  double weight_bytes = 0;            // of the final configuration (when `bytes` is given)
  std::optional<double> latency_ms;   // of the final configuration (when `latency` is given)
  bool memory_ok = true;
  std::vector<int> filled;  // layers the fill lowered beyond the bisections' prefixes, in the order it did
  nlohmann::json to_json() const;
};

// order8 / order4: permutations of [0, N) (least sensitive first).
SearchResult bisection_search(int n, const std::vector<int>& order8, const std::vector<int>& order4,
                              const ConfigMetric& metric, const SearchOptions& opt);

// Exhaustive: metric at every k in [0, N] for `target` along `order` over `base` ([N]); returns the probes
// (k ascending). best_k: largest k inside the range (range measured against k = 0); prefix_k: largest k
// with every k' <= k inside the range (what an ideal monotone bisection finds). With `ks` (ascending, first
// 0, all in [0, |order|]) only those k are evaluated, and best_k / prefix_k refer to them. `reference`: what
// the range is measured against (unset: the metric at k = 0).
struct SweepResult {
  std::vector<Probe> probes;
  int best_k = 0, prefix_k = 0;
};
SweepResult sweep_k(const std::vector<Precision>& base, const std::vector<int>& order, Precision target,
                    const ConfigMetric& metric, const AccuracyRange& range, const std::vector<int>& ks = {},
                    std::optional<double> reference = std::nullopt);

// One configuration's evaluation: the metric and the per-sample outcomes behind it (TaskResult::hits: '1' /
// '0' per sample of the split, in split order; empty for a metric without them).
struct ConfigScore {
  double metric = 0;
  std::string hits;
  int64_t nonfinite = 0;  // samples whose outputs were NaN / infinite: such a configuration is never in range
};
using ConfigScorer = std::function<ConfigScore(const std::vector<Precision>&)>;

// A deterministic metric behind a memo: each distinct configuration is evaluated once. The memo can be
// saved to / restored from JSON (the analysis cache keeps it, keyed by everything the metric depends on),
// so a second search with another range re-uses every evaluation the first one made.
class MemoMetric {
 public:
  explicit MemoMetric(ConfigMetric f);          // a plain metric: scores carry no hits
  static MemoMetric with_hits(ConfigScorer f);  // a metric with its per-sample outcomes
  double operator()(const std::vector<Precision>& p) { return score(p).metric; }
  const ConfigScore& score(const std::vector<Precision>& p);
  ConfigMetric fn() {
    return [this](const std::vector<Precision>& p) { return (*this)(p); };
  }
  int64_t fresh() const { return fresh_; }  // evaluations of the underlying metric
  int64_t hits() const { return hits_; }    // answers from the memo
  size_t size() const { return memo_.size(); }
  // {"configs": {"<one letter per layer: 3 h b 8 4>": metric, ...}, "hits": {"<letters>": "0110...", ...}}
  nlohmann::json to_json() const;
  // Adds the scores of a to_json() memo. Throws naming the problem, merging nothing, when it is malformed or
  // (when given, non-zero) a configuration has not `layers` letters or its hits not `samples` outcomes.
  void merge_json(const nlohmann::json& j, size_t layers = 0, size_t samples = 0);

 private:
  MemoMetric() = default;
  ConfigScorer f_;
  std::map<std::vector<Precision>, ConfigScore> memo_;
  int64_t fresh_ = 0, hits_ = 0;
};

// Paired comparison of two configurations on the same samples. a, b: hits strings of equal length n ('1' /
// '0'). The standard error of the mean of d_i = a_i - b_i (the metric difference as a fraction):
// sqrt(sum_i (d_i - mean d)^2 / (n (n - 1))); 0 for n < 2. Samples both get right or both get wrong add
// nothing to the spread: only the disagreements do, which is why pairing makes the bound tight.
double paired_standard_error(const std::string& a, const std::string& b);
// z with Phi(z) = confidence (Phi the standard normal CDF), confidence in [0.5, 1): the one-sided normal
// quantile (0.5 -> 0, 0.9 -> 1.2816, 0.95 -> 1.6449). Throws naming the value outside [0.5, 1).
double one_sided_z(double confidence);
// What the bisection compares with the range at a confidence level: the memo's metric of p minus
// z * unit * paired_standard_error(hits of p, hits of `reference`) (unit 100: metrics in percent). z = 0: the
// metric itself. With z > 0 a configuration whose score has no hits is an error naming the need. A
// configuration that produced any non-finite output gets -infinity: it is outside every range.
ConfigMetric paired_lower_bound(MemoMetric& memo, std::vector<Precision> reference, double z, double unit = 100);

// The payload alone: numel * bits / 8 (fp32 4, fp16 2, int8 1, int4 0.5 bytes per weight; no scales, biases
// or tables). A simple model for tests of the search; the search itself counts with a BytesTable.
double weight_bytes(const std::vector<int64_t>& numel, const std::vector<Precision>& p);

// What a configuration stores when deployed (models/native/model_file.h): per layer and precision the
// packed weights, scales, bias and activation parameters, plus `fixed`, what the model stores whatever the
// configuration (BERT's layer norms and token-type table; 0 for the CNNs, whose batch norms fold into the
// convs).
struct BytesTable {
  std::vector<std::map<Precision, double>> layer;  // [N] precision -> bytes
  double fixed = 0;
  double operator()(const std::vector<Precision>& p) const;
};
BytesTable bytes_table(models::Model& m, int64_t int4_group);

// Throws unless max_bytes >= the smallest footprint (every layer int4; no configuration could fit below it);
// the message names the model, the limit and the footprint.
void check_max_bytes(double max_bytes, const BytesTable& bytes, const std::string& model);

// Per-layer latency (ms) by precision. `measured` is false for the MAC-based placeholder, whose `source`
// says so; reports must not call such numbers measured.
struct LatencyTable {
  std::string source;
  bool measured = false;
  std::map<std::string, std::map<Precision, double>> ms;  // layer -> precision -> ms (batch 1)
  nlohmann::json to_json() const;
};
// {"source": "...", "measured": true|false, "layers": {"name": {"fp16": ms, "int8": ms, ...}}}
LatencyTable load_latency_table(const std::string& path);  // regular file of at most kMaxJsonFileBytes
LatencyTable parse_latency_table(std::string_view text, const std::string& what);  // file contents
LatencyTable latency_table_from_json(const nlohmann::json& j, const std::string& what);
// ESTIMATE, not a measurement: ms = macs / rate(p) with assumed rates fp32 / fp16 / bf16 25, int8 50,
// int4 55 GMAC/s (bf16 is given fp16's rate: nothing about this CPU's BF16 dot products is assumed).
LatencyTable mac_estimate_latency_table(const std::vector<models::QuantLayer>& layers);
// Sum over layers of table[layer][precision]; throws naming a missing layer / precision.
double config_latency_ms(const LatencyTable& t, const std::vector<std::string>& layers,
                         const std::vector<Precision>& p);

}  // namespace mpq::quant
