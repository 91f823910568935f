// The search pipeline's context and its analysis stages: latency table, calibration, Hessian traces,
// dependencies, scores. Every result is cached (AnalysisCache::cached) under a key of everything it depends on.
#include <fmt/format.h>

#include "core/autograd/node.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/threading.h"
#include "models/native/measure.h"
#include "models/zoo.h"
#include "ops/ops.h"
#include "quant/fake_quant.h"
#include "quant/gptq_model.h"
#include "quant/pipeline_context.h"

namespace mpq::quant::pipeline {

using nlohmann::json;

Context::Context(models::Model& m, const SearchRequest& r, SearchObserver& o)
    : model(m),
      req(r),
      obs(o),
      task(make_task(m, r.weights, r.data, r.splits, r.seed)),
      layers(m.quant_layers()),
      bytes(bytes_table(m, r.int4_group)),
      weights_id(weights_identity(r.weights)),
      cache(r.cache_dir, [this](const std::string& w) { warn(w); }),
      latency_input(models::latency_input(m, r.latency_seq)),
      t0(std::chrono::steady_clock::now()) {
  const Splits& sp = task.splits;
  check(!sp.calib.empty() && !sp.search.empty() && !sp.test.empty(),
        "search: every split needs samples (calib {}, search {}, test {})", sp.calib.size(), sp.search.size(),
        sp.test.size());
  for (auto& [nm, t] : model.named_tensors()) tensors[nm] = t;
  for (const auto& l : layers) {
    check(l.weight.empty() || tensors.count(l.weight), "search: layer {} names weight {} that the model lacks", l.name,
          l.weight);
    names.push_back(l.name);
    numel.push_back(l.weight.empty() ? 0 : tensors[l.weight]->numel());
  }
  const int64_t dep_n = std::min<int64_t>(req.dep_samples, int64_t(sp.calib.size()));
  calib_sub.assign(sp.calib.begin(), sp.calib.begin() + dep_n);
}

json Context::inputs(const std::vector<int64_t>& indices, json settings) const {
  settings["data"] = task.data_identity;
  return analysis_inputs(model.name(), weights_id, indices, settings);
}

void Context::log(const std::string& s) const {
  obs.log(
      fmt::format("[{:6.1f} s] {}", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), s));
}

void Context::warn(const std::string& s) const {
  log("warning: " + s);
  if (out) out->warnings.push_back(s);
}

Phase::Phase(Context& c, std::string name) : c_(c), name_(std::move(name)), t0_(std::chrono::steady_clock::now()) {}
Phase::~Phase() {
  c_.obs.phase_end(name_);
  if (c_.out)
    c_.out->phases.push_back({name_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count()});
}
void Phase::progress(int64_t done, int64_t total, const std::string& note) const {
  c_.obs.progress(name_, done, total, note);
}

std::optional<double> table_ms(const Context& c, const LatencyTable& lat, const std::vector<Precision>& p) {
  for (size_t i = 0; i < p.size(); ++i) {
    auto it = lat.ms.find(c.names[i]);
    if (it == lat.ms.end() || !it->second.count(p[i])) return std::nullopt;
  }
  return config_latency_ms(lat, c.names, p);
}

namespace {
// Every layer of the model has a time at each of `precisions` in `lat`; throws naming `what` and the first gap.
void check_layer_times(const Context& c, const LatencyTable& lat, const std::vector<Precision>& precisions,
                       const std::string& what) {
  for (Precision p : precisions)
    for (const std::string& nm : c.names) {
      auto it = lat.ms.find(nm);
      check(it != lat.ms.end() && it->second.count(p), "latency table '{}' ({}): layer '{}' has no {} time", what,
            lat.source, nm, precision_name(p));
    }
}
}  // namespace

// --latency FILE (from `mpq profile`), else measured here with the native engine (cached, keyed by model,
// weights and measurement settings), or the MAC placeholder when asked for.
LatencyTable latency_stage(Context& c, json& profile) {
  Phase ph(c, "latency");
  const SearchRequest& r = c.req;
  const std::vector<Precision> needed = {r.start, Precision::int8, Precision::int4};  // what the search reads
  LatencyTable lat;
  profile = nullptr;
  if (!r.latency_file.empty()) {
    lat = load_latency_table(r.latency_file);
  } else if (r.estimate_latency) {
    lat = mac_estimate_latency_table(c.layers);
  } else {
    const json key = analysis_inputs(c.model.name(), c.weights_id, {},
                                     {{"what", "latency table"},
                                      {"threads", num_threads()},
                                      {"runs", r.latency_runs},
                                      {"int4_group", r.int4_group},
                                      {"isa_cap", isa_name(isa_cap())}});
    const std::vector<Precision> all = {Precision::fp32, Precision::fp16, Precision::bf16, Precision::int8,
                                        Precision::int4};
    bool hit = false;
    profile = c.cache.cached<json>(
        "latency", key,
        [&] {
          c.log("latency table: profiling every layer at fp32 / fp16 / bf16 / int8 / int4 with the native engine");
          const Calibration cal = calibrate_batches(c.model, {c.latency_input});  // ranges do not change speed
          return native::measure_latency_table(
              c.model, all, [&](Precision p) { return uniform_assignment(c.model, p, cal, r.int4_group); },
              c.latency_input, 3, r.latency_runs,
              [&](Precision p, int run, int runs, double ms) {
                ph.progress(run, runs, fmt::format("{} {:.2f} ms", precision_name(p), ms));
              });
        },
        [](const json& j) { return j; },
        [&](const json& j) {  // a stored table must be readable and time every layer where the search needs it
          check_layer_times(c, latency_table_from_json(j, "cached latency table"), needed, "cached");
          return j;
        },
        &hit);
    if (hit) c.log("latency table: cached (" + profile.value("source", std::string()) + ")");
    lat = latency_table_from_json(profile, "measured latency table");
  }
  check_layer_times(c, lat, needed,
                    !r.latency_file.empty() ? r.latency_file
                    : r.estimate_latency    ? "MAC estimate"
                                            : "measured");
  return lat;
}

Calibration calibration_stage(Context& c, json& cal_inputs) {
  Phase ph(c, "calibration");
  const CalibrateOptions copt;
  const std::vector<int64_t>& idx = c.task.splits.calib;
  cal_inputs = c.inputs(idx, {{"what", "calibration"},
                              {"select", "model_output"},
                              {"select_samples", copt.select_samples},
                              {"percentile", copt.observers.percentile},
                              {"grid", copt.observers.grid}});
  bool hit = false;
  Calibration cal = c.cache.cached<Calibration>(
      "calibration", cal_inputs,
      [&] {
        c.log(fmt::format("calibration on {} samples ...", idx.size()));
        return calibrate(c.model, *c.task.ev, idx, copt);
      },
      [](const Calibration& v) { return to_json(v); },
      [&](const json& j) {  // a stored calibration must cover every operand of every layer of this model
        Calibration v = calibration_from_json(j);
        for (const models::QuantLayer& l : c.layers)
          for (int op = 0; op < models::layer_operands(l.kind); ++op) {
            const auto it = v.find(l.name);
            check(it != v.end() && it->second.count(op),
                  "analysis cache: calibration payload has no range for input {} of layer '{}'", op, l.name);
          }
        return v;
      },
      &hit);
  c.log(hit ? "calibration: cached" : fmt::format("calibration on {} samples done", idx.size()));
  return cal;
}

void rounding_stage(Context& c, const Calibration& cal, json& cal_inputs) {
  Phase ph(c, "weight rounding");
  RoundingRequest rr;
  rr.method = c.req.rounding;
  rr.int4_group = c.req.int4_group;
  const std::vector<int64_t>& idx = c.task.splits.rounding;
  json settings = rounding_settings(rr);
  settings["calibration"] = analysis_key(cal_inputs);
  const json key = c.inputs(idx, settings);
  cal_inputs["weight_rounding"] = analysis_key(key);
  if (rr.method == WeightRounding::nearest) {
    c.log("weight rounding: round-to-nearest");
    return;
  }
  bool hit = false;
  c.rounded = cached_round_weights(c.cache, key, c.model, task_batches(*c.task.ev, idx, 16), cal, rr, &hit,
                                   [&](const std::string& s) { c.log(s); });
  c.log(hit ? "weight rounding: cached"
            : fmt::format("weight rounding ({}) of {} layers on {} samples done",
                          enum_name(kWeightRoundingNames, rr.method), c.rounded.int4.size(), idx.size()));
}

namespace {

HessianLoss hessian_loss_of(const Context& c) {
  if (c.req.hessian_loss) return *c.req.hessian_loss;
  return c.model.name() == "bert" ? HessianLoss::distill : HessianLoss::labels;
}

// Layer indices with a weight, in trace order (BERT's attention matmuls have none: Omega 0).
std::vector<int> weighted_layers(const Context& c) {
  std::vector<int> w;
  for (int i = 0; i < c.n(); ++i)
    if (!c.layers[size_t(i)].weight.empty()) w.push_back(i);
  return w;
}

HutchinsonResult compute_traces(Context& c, const Phase& ph, HessianLoss loss_kind) {
  const models::Batch hb = c.task.ev->batch(c.calib_sub);
  Tensor target;  // [S, C] fp32 output distribution (distill)
  if (loss_kind == HessianLoss::distill) {
    autograd::NoGradGuard ng;
    ScopedHook none(c.model, nullptr);
    target = ops::softmax(c.model.forward(hb, false), -1);
  }
  std::vector<Tensor> ws;
  for (int i : weighted_layers(c)) {
    Tensor* w = c.tensors[c.layers[size_t(i)].weight];
    w->set_requires_grad(true);
    ws.push_back(*w);
  }
  const Tensor logits = c.model.forward(hb, false);  // [S, C]
  const Tensor loss = loss_kind == HessianLoss::distill ? ops::soft_cross_entropy(logits, target)
                                                        : ops::cross_entropy(logits, hb.labels);
  HutchinsonOptions ho;
  ho.rel_tol = 1e-2;
  ho.max_draws = c.req.draws;
  ho.min_draws = std::min(8, c.req.draws);
  ho.seed = c.req.seed;
  ho.progress = [&](int d, double move) {
    ph.progress(d, c.req.draws,
                fmt::format("largest relative move {:.1e} (ETA at the cap; stops earlier when < 1e-2)", move));
  };
  HutchinsonResult hr = hutchinson_traces(loss, ws, ho);
  for (auto& w : ws) w.set_requires_grad(false);
  return hr;
}

}  // namespace

HutchinsonResult hessian_stage(Context& c) {
  Phase ph(c, "hessian");
  const HessianLoss loss_kind = hessian_loss_of(c);
  const json key = c.inputs(c.calib_sub, {{"what", "traces"},
                                          {"draws", c.req.draws},
                                          {"seed", c.req.seed},
                                          {"loss", enum_name(kHessianLossNames, loss_kind)}});
  bool hit = false;
  HutchinsonResult hr = c.cache.cached<HutchinsonResult>(
      "traces", key, [&] { return compute_traces(c, ph, loss_kind); },
      [](const HutchinsonResult& v) { return to_json(v); },
      [&](const json& j) {  // one trace per weighted layer of this model
        HutchinsonResult v = hutchinson_from_json(j);
        check(v.trace.size() == weighted_layers(c).size(),
              "analysis cache: traces payload has {} traces for {} weighted layers", v.trace.size(),
              weighted_layers(c).size());
        return v;
      },
      &hit);
  c.log(hit ? "hessian traces: cached"
            : fmt::format("hessian traces: {} draws ({}) on {} samples, loss {}", hr.draws,
                          hr.converged ? "converged" : "cap", c.calib_sub.size(),
                          enum_name(kHessianLossNames, loss_kind)));
  return hr;
}

std::map<Precision, DependencyResult> dependency_stage(Context& c, const Calibration& cal, const json& cal_inputs) {
  Phase ph(c, "dependencies");
  DependencyOptions dopt;
  dopt.window = c.req.window;
  dopt.int4_group = c.req.int4_group;
  dopt.base = c.req.start;
  dopt.rounded = &c.rounded;
  std::map<Precision, DependencyResult> deps;
  for (Precision p : {Precision::int8, Precision::int4}) {
    dopt.precision = p;
    const json key = c.inputs(c.calib_sub, {{"what", "dependencies"},
                                            {"precision", precision_name(p)},
                                            {"window", dopt.window},
                                            {"base", precision_name(c.req.start)},
                                            {"int4_group", c.req.int4_group},
                                            {"loss", "distill_fp32"},
                                            {"calibration", analysis_key(cal_inputs)}});
    bool hit = false;
    deps[p] = c.cache.cached<DependencyResult>(
        "dependencies", key,
        [&] {
          return measure_dependencies(
              c.layers, model_set_loss(c.model, *c.task.ev, c.calib_sub, cal, dopt), dopt,
              [&](int64_t d, int64_t t) { ph.progress(d, t, fmt::format("{} loss probes", precision_name(p))); });
        },
        [](const DependencyResult& v) { return to_json(v); },
        [&](const json& j) {  // measured at this precision from this start, over this model's layers
          DependencyResult v = dependency_from_json(j);
          check(v.precision == p && v.base == c.req.start,
                "analysis cache: dependencies payload measured {} from {}, expected {} from {}",
                precision_name(v.precision), precision_name(v.base), precision_name(p), precision_name(c.req.start));
          check(v.layers == c.names, "analysis cache: dependencies payload lists {} layers, not the model's {}",
                v.layers.size(), c.names.size());
          return v;
        },
        &hit);
    const DependencyResult& d = deps[p];
    c.log(hit ? fmt::format("dependencies {}: cached", precision_name(p))
              : fmt::format("dependencies {}: {} pairs, {} evaluations, {:.1f} s", precision_name(p), d.pairs.size(),
                            d.evaluations, d.seconds));
  }
  return deps;
}

std::map<Precision, LayerScores> score_stage(Context& c, const HutchinsonResult& hr,
                                             const std::map<Precision, DependencyResult>& deps) {
  const std::vector<int> weighted = weighted_layers(c);
  std::map<Precision, LayerScores> scores;
  for (Precision p : {Precision::int8, Precision::int4}) {
    std::vector<double> omega(size_t(c.n()), 0.0);  // [N]
    for (size_t w = 0; w < weighted.size(); ++w) {
      const Tensor& wt = *c.tensors[c.layers[size_t(weighted[w])].weight];
      const int64_t row = wt.numel() / wt.size(0);
      const int64_t g = c.req.int4_group > 0 && row % c.req.int4_group == 0 ? c.req.int4_group : 0;
      omega[size_t(weighted[w])] = hessian_omega(hr.trace[w], wt, p, g);
    }
    scores[p] = augmented_scores(omega, deps.at(p), !c.req.signed_interactions);
  }
  return scores;
}

}  // namespace mpq::quant::pipeline
