// The method end to end as library code: a typed request in, a typed result out, one function per stage.
// `mpq search` parses flags into a SearchRequest and prints the SearchOutcome; `mpq demo` builds a request;
// the JSON / CSV / SVG / HTML report files are rendered from the outcome (quant/pipeline_report.h).
//
// Stages (docs/method.md describes the method; every analysis result is cached, see AnalysisCache):
//   1. task: seeded disjoint calibration / search / test splits (quant/task.h make_task);
//   2. latency table: every layer at fp32 / fp16 / bf16 / int8 / int4 measured by the native engine, or
//      read from `mpq profile`'s file, or the MAC-based ESTIMATE                                  [cached]
//   3. activation calibration (observers, per-layer pick by model-output error)                  [cached]
//   4. Hutchinson Hessian traces on calibration samples                                            [cached]
//   5. dependencies dL_i, I_ij at int8 and int4 (base: the start precision)                       [cached]
//   6. scores and the orderings (augmented, Hessian-only, single-effect-only, random); a two-stage
//      bisection per ordering on the search split (every evaluated configuration is memoised)   [cached]
//   7. the Pareto sweeps of every ordering + the uniform points                         [cached evals]
//   8. the test split: the reference, the uniform precisions and the chosen configuration; the end-to-end
//      latency of the chosen configuration and of all-fp16 / bf16 / fp32 (native engine).
// Metrics are in percent throughout (top-1 %, accuracy %); max_drop is in percentage points.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/precision.h"
#include "models/model.h"
#include "quant/cache.h"
#include "quant/dependency.h"
#include "quant/hessian.h"
#include "quant/ordering.h"
#include "quant/report.h"
#include "quant/rounding.h"
#include "quant/search.h"
#include "quant/task.h"

namespace mpq::quant {

enum class ProbeEngine { simulated, native };
inline constexpr std::array<EnumName<ProbeEngine>, 2> kProbeEngineNames{
    {{ProbeEngine::simulated, "simulated"}, {ProbeEngine::native, "native"}}};

enum class HessianLoss { labels, distill };
inline constexpr std::array<EnumName<HessianLoss>, 2> kHessianLossNames{
    {{HessianLoss::labels, "labels"}, {HessianLoss::distill, "distill"}}};

struct SearchRequest {
  // what
  std::string weights;  // the model's weights file (its identity keys the cache)
  std::string data;     // ImageNet-style folder (CNNs) or SST-2 folder (BERT)
  // the accuracy range and how it is judged
  AccuracyRange range;
  double confidence = 0.5;                   // [0.5, 1): paired lower bound (0.5 = the plain estimate)
  Precision reference = Precision::fp32;     // what the range is measured against: fp32 or fp16
  Precision start = Precision::fp16;         // the 16-bit precision the bisection lowers from: fp16 or bf16
  Objective objective = Objective::latency;  // what the final choice minimises inside the range
  std::optional<double> max_bytes;           // stored-bytes limit (BytesTable)
  // splits and analysis
  TaskOptions splits;
  uint64_t seed = 0;
  int draws = 16;                                  // Hutchinson draws (cap)
  int64_t dep_samples = 8;                         // calibration samples of the Hessian and dependency losses
  int window = 0;                                  // dependency window (0: graph neighbours only)
  std::optional<HessianLoss> hessian_loss;         // unset: distill for BERT, labels for the CNNs
  bool signed_interactions = false;                // keep negative I_ij in the augmented score
  int64_t int4_group = 0;                          // 0 (per channel), 32, 64 or 128
  WeightRounding rounding = WeightRounding::gptq;  // how int8 / int4 weights are rounded (quant/rounding.h)
  // latency
  std::string latency_file;       // `mpq profile` output; empty: measured here
  bool estimate_latency = false;  // the MAC-based ESTIMATE instead of a measurement
  int latency_runs = 10;
  int64_t latency_seq = 0;  // BERT latency input length (0: the model's)
  // search and report
  std::vector<OrderKind> orderings{OrderKind::augmented, OrderKind::hessian, OrderKind::single, OrderKind::random};
  // Order by score per byte saved (quant/ordering.h per_saving) instead of by score (the paper's ordering).
  // Off by default: with --objective bytes it measured worse on ResNet50 and MobileNetV2 (README, "Ordering
  // per byte").
  bool order_per_byte = false;
  bool fill = false;  // SearchOptions::fill: greedy completion after the bisections (off: the paper's search)
  double latency_tolerance = 0;  // SearchOptions::latency_tolerance (0: the fastest, the paper's choice)
  int pareto_points = 9;         // k values per sweep (0: every k)
  bool pareto = true;
  ProbeEngine engine = ProbeEngine::simulated;
  std::string cache_dir;  // analysis cache folder (empty: no cache)
  // Throws naming the field when a value is outside its domain.
  void validate() const;
};

// What the pipeline tells its caller while it runs. The CLI draws progress bars; a test can record or
// ignore. All members have no-op defaults.
struct SearchObserver {
  virtual ~SearchObserver() = default;
  virtual void log(const std::string& line) {}
  // done of total steps of a phase (total 0: not known yet); note: free text
  virtual void progress(const std::string& phase, int64_t done, int64_t total, const std::string& note) {}
  virtual void phase_end(const std::string& phase) {}
};

struct OrderingRun {
  OrderKind kind = OrderKind::augmented;
  std::vector<int> order8, order4;  // least sensitive first
  SearchResult bisection;
};

struct AreaRow {
  std::string a, b;   // ordering names: area of A's frontier over B's
  FrontierArea area;  // in area.space (latency: points x ms, bytes: points x MB)
};

// Latency figures of the configurations the report compares (ms; unset when not available).
struct LatencyFigures {
  std::optional<double> chosen, fp16, bf16, fp32, int8, int4;
};

struct SearchOutcome {
  SearchRequest request;
  std::string model;         // Model::name()
  std::string metric_label;  // "top-1" | "accuracy"
  std::vector<models::QuantLayer> layers;
  std::vector<int64_t> numel;  // [N] weight elements per layer
  BytesTable bytes;            // stored bytes per layer and precision (models/native/model_file.h)
  int64_t calib_samples = 0, search_samples = 0, test_samples = 0;
  std::string split_note;
  // analysis
  LatencyTable latency;
  nlohmann::json latency_profile;  // the measured table as `mpq profile` writes it (null when read / estimated)
  Calibration calibration;
  RoundedWeights rounded;  // the int8 / int4 records every probe and the chosen configuration use
  HutchinsonResult traces;
  int64_t hessian_samples = 0;
  HessianLoss hessian_loss = HessianLoss::labels;
  std::map<Precision, DependencyResult> dependencies;
  std::map<Precision, LayerScores> scores;
  // search
  std::vector<OrderingRun> runs;  // one per requested ordering; runs[0] is the chosen one
  ParetoSweeps pareto;
  std::vector<AreaRow> areas;
  Assignment chosen;
  std::vector<Precision> chosen_precisions;
  double chosen_search_metric = 0;  // the estimate on the search split (runs[0].bisection has the bound)
  // test split (percent): "fp32", "fp16", "bf16", "int8", "int4", "chosen"
  std::map<std::string, double> test;
  double baseline_test = 0, metric_test = 0;
  bool within_range = false;
  // latency of the comparison: end to end (native engine) when available, else the table sums
  bool end_to_end_available = false;
  LatencyFigures end_to_end, table;
  std::string latency_source;
  // bookkeeping
  int64_t evaluations_fresh = 0;
  int64_t cached_configurations = 0;
  std::vector<std::pair<std::string, double>> phases;  // phase -> seconds, in order
  double seconds = 0;
  int threads = 1;
  std::vector<std::string> warnings;
  const LatencyFigures& compared() const { return end_to_end_available ? end_to_end : table; }
};

// Runs the whole method on `model` (loaded from request.weights). Throws mpq::Error naming the problem
// (no configuration fits max_bytes, the start precision is already outside the range, ...).
SearchOutcome run_search(models::Model& model, const SearchRequest& request, SearchObserver& observer);

}  // namespace mpq::quant
