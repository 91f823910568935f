// Internal to the search pipeline (quant/pipeline*.cpp): the state the stages share, and the stages.
// Users call quant::run_search (quant/pipeline.h).
#pragma once
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "quant/pipeline.h"

namespace mpq::quant::pipeline {

class Phase;

// What every stage reads: the model, the request, the task with its splits, the layer list, the cache.
struct Context {
  Context(models::Model& m, const SearchRequest& r, SearchObserver& o);
  Context(const Context&) = delete;  // the cache's warning callback holds `this`
  Context& operator=(const Context&) = delete;
  models::Model& model;
  const SearchRequest& req;
  SearchObserver& obs;
  Task task;
  std::vector<models::QuantLayer> layers;
  std::vector<std::string> names;          // [N]
  std::vector<int64_t> numel;              // [N] weight elements (0: weightless attention matmuls)
  BytesTable bytes;                        // stored bytes of a configuration
  std::map<std::string, Tensor*> tensors;  // the model's tensors by name
  std::vector<int64_t> calib_sub;          // the calibration samples of the Hessian and dependencies
  RoundedWeights rounded;                  // rounding_stage's records (empty: round-to-nearest)
  WeightsId weights_id;
  AnalysisCache cache;  // damaged entries are reported through warn()
  models::Batch latency_input;
  std::chrono::steady_clock::time_point t0;
  SearchOutcome* out = nullptr;  // phases and warnings are recorded here

  int n() const { return int(layers.size()); }
  std::vector<Precision> uniform(Precision p) const { return std::vector<Precision>(size_t(n()), p); }
  // analysis_inputs of this model, weights and data over `indices` with `settings`
  nlohmann::json inputs(const std::vector<int64_t>& indices, nlohmann::json settings) const;
  void log(const std::string& s) const;
  // A warning: logged now and listed in out->warnings (the report and the summary show them).
  void warn(const std::string& s) const;
};

// Times one phase and reports its end to the observer; seconds land in out->phases.
class Phase {
 public:
  Phase(Context& c, std::string name);
  ~Phase();
  void progress(int64_t done, int64_t total, const std::string& note = "") const;
  Phase(const Phase&) = delete;
  Phase& operator=(const Phase&) = delete;

 private:
  Context& c_;
  std::string name_;
  std::chrono::steady_clock::time_point t0_;
};

// The accuracy probes: each distinct configuration evaluated once on a split (memoised, cached).
struct Probes {
  Probes(Context& c, const Calibration& cal, const nlohmann::json& cal_inputs);
  MemoMetric search, test;
  int64_t cached_configurations = 0;
  void save() const;

 private:
  Context& c_;
  nlohmann::json search_key_, test_key_;
};

// Stages, in pipeline order.
LatencyTable latency_stage(Context& c, nlohmann::json& profile);
Calibration calibration_stage(Context& c, nlohmann::json& cal_inputs);
// Fills c.rounded; adds the rounding's key to cal_inputs, so that every result keyed by the calibration
// (dependencies, metric memos) is keyed by the rounding too.
void rounding_stage(Context& c, const Calibration& cal, nlohmann::json& cal_inputs);
HutchinsonResult hessian_stage(Context& c);
std::map<Precision, DependencyResult> dependency_stage(Context& c, const Calibration& cal,
                                                       const nlohmann::json& cal_inputs);
std::map<Precision, LayerScores> score_stage(Context& c, const HutchinsonResult& hr,
                                             const std::map<Precision, DependencyResult>& deps);
std::vector<OrderingRun> bisection_stage(Context& c, const std::map<Precision, LayerScores>& scores, Probes& probes,
                                         const LatencyTable& lat);
void pareto_stage(Context& c, Probes& probes, const LatencyTable& lat, SearchOutcome& out);
void test_stage(Context& c, Probes& probes, SearchOutcome& out);
void latency_comparison_stage(Context& c, const LatencyTable& lat, SearchOutcome& out);

// Sum of the table over the layers for a configuration (ms); nullopt when the table lacks a precision.
std::optional<double> table_ms(const Context& c, const LatencyTable& lat, const std::vector<Precision>& p);

}  // namespace mpq::quant::pipeline
