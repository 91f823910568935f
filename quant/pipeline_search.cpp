// The search pipeline's evaluation stages (bisections, Pareto sweeps, test split, end-to-end latency) and
// run_search, which strings every stage together.
#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "core/file_io.h"
#include "core/threading.h"
#include "models/native/measure.h"
#include "models/native/native.h"
#include "quant/fake_quant.h"
#include "quant/pipeline_context.h"

namespace mpq::quant::pipeline {

using nlohmann::json;

namespace {

ConfigScorer scorer(Context& c, const Calibration& cal, std::vector<int64_t> idx) {
  return [&c, &cal, idx](const std::vector<Precision>& p) {
    auto score = [](const TaskResult& t) { return ConfigScore{100 * t.metric, t.hits, t.nonfinite}; };
    const Assignment a = make_assignment(c.layers, p, cal, c.req.int4_group, &c.rounded);
    if (c.req.engine == ProbeEngine::native) {
      native::CompiledModel cm(c.model, native::compile(c.model, a, native::CompileOptions::reproducible()));
      return score(c.task.ev->evaluate(cm, idx));
    }
    if (std::all_of(p.begin(), p.end(), [](Precision q) { return q == Precision::fp32; }))
      return score(c.task.ev->evaluate(c.model, idx));  // the plain fp32 model
    ScopedHook h(c.model, std::make_shared<FakeQuantHook>(a));
    return score(c.task.ev->evaluate(c.model, idx));
  };
}

json memo_key(const Context& c, const char* split, const std::vector<int64_t>& idx, const json& cal_inputs) {
  return c.inputs(idx, {{"what", "metric_memo"},
                        {"split", split},
                        {"calibration", analysis_key(cal_inputs)},
                        {"int4_group", c.req.int4_group},
                        {"engine", enum_name(kProbeEngineNames, c.req.engine)},
                        {"unit", "percent"},
                        {"per_sample_hits", true}});
}

}  // namespace

Probes::Probes(Context& c, const Calibration& cal, const json& cal_inputs)
    : search(MemoMetric::with_hits(scorer(c, cal, c.task.splits.search))),
      test(MemoMetric::with_hits(scorer(c, cal, c.task.splits.test))),
      c_(c),
      search_key_(memo_key(c, "search", c.task.splits.search, cal_inputs)),
      test_key_(memo_key(c, "test", c.task.splits.test, cal_inputs)) {
  // a damaged memo is reported and left out: its configurations are evaluated again and the memo rewritten
  const size_t n = size_t(c.n());
  c.cache.use_stored("metric_memo", search_key_,
                     [&](const json& j) { search.merge_json(j, n, c.task.splits.search.size()); });
  c.cache.use_stored("metric_memo", test_key_,
                     [&](const json& j) { test.merge_json(j, n, c.task.splits.test.size()); });
  cached_configurations = int64_t(search.size() + test.size());
}

void Probes::save() const {
  c_.cache.store("metric_memo", search_key_, search.to_json());
  c_.cache.store("metric_memo", test_key_, test.to_json());
}

std::vector<OrderingRun> bisection_stage(Context& c, const std::map<Precision, LayerScores>& scores, Probes& probes,
                                         const LatencyTable& lat) {
  Phase ph(c, "bisection");
  const SearchRequest& r = c.req;
  // What the bisection compares with the range: the plain search-split metric, or (confidence > 0.5) its
  // paired lower bound against the reference configuration.
  const double z = one_sided_z(r.confidence);
  const ConfigMetric bounded = paired_lower_bound(probes.search, c.uniform(r.reference), z);
  SearchOptions so;
  so.range = r.range;
  so.reference = probes.search(c.uniform(r.reference));
  so.objective = r.objective;
  so.bytes = [&](const std::vector<Precision>& p) { return c.bytes(p); };
  so.max_bytes = r.max_bytes;
  so.latency = [&](const std::vector<Precision>& p) { return config_latency_ms(lat, c.names, p); };
  so.metric_name = c.task.metric_label + " %";
  so.start = r.start;
  so.fill = r.fill;
  so.latency_tolerance = r.latency_tolerance;
  // What each stage orders by: the scores, or (order_per_byte) the scores per stored byte that lowering the
  // layer saves: start -> int8 for stage 1, int8 -> int4 for stage 2.
  std::map<Precision, LayerScores> ordered = scores;
  if (r.order_per_byte) {
    const auto saved = [&](Precision from, Precision to) {
      std::vector<double> out;  // [N] bytes saved by lowering layer i alone (BytesTable's per-layer sizes)
      for (const std::map<Precision, double>& l : c.bytes.layer) out.push_back(l.at(from) - l.at(to));
      return out;
    };
    ordered[Precision::int8] = per_saving(scores.at(Precision::int8), saved(r.start, Precision::int8));
    ordered[Precision::int4] = per_saving(scores.at(Precision::int4), saved(Precision::int8, Precision::int4));
  }
  std::vector<OrderingRun> runs;
  for (OrderKind k : r.orderings) {
    OrderingRun run;
    run.kind = k;
    run.order8 = make_ordering(ordered.at(Precision::int8), k, r.seed);
    run.order4 = make_ordering(ordered.at(Precision::int4), k, r.seed);
    so.progress = [&](const Probe& p, int64_t done, int64_t max_total) {
      ph.progress(done, max_total,
                  fmt::format("{} stage {} k {} -> {:.2f} % ({})", order_name(k), p.stage, p.k, p.metric,
                              p.ok ? "inside" : "outside"));
    };
    run.bisection = bisection_search(c.n(), run.order8, run.order4, bounded, so);
    const SearchResult& b = run.bisection;
    c.log(fmt::format(
        "bisection ({}): k8 {} k4 {}{}  search {} {:.2f} %{} (reference {} {:.2f} %, {} {:.2f} %)  {} evaluations  "
        "{} warnings",
        order_name(k), b.k8, b.k4, b.filled.empty() ? "" : fmt::format(" ({} by the fill)", b.filled.size()),
        c.task.metric_label, b.final_metric,
        z == 0
            ? std::string()
            : fmt::format(" ({:g} % lower bound; estimate {:.2f} %)", 100 * r.confidence, probes.search(b.precisions)),
        precision_name(r.reference), b.reference, precision_name(r.start), b.baseline, b.evaluations,
        b.warnings.size()));
    runs.push_back(std::move(run));
  }
  probes.save();
  return runs;
}

void pareto_stage(Context& c, Probes& probes, const LatencyTable& lat, SearchOutcome& out) {
  if (!c.req.pareto) return;
  Phase ph(c, "pareto");
  const std::string src = lat.measured ? "measured" : "ESTIMATE";
  std::vector<OrderingSweep> sweeps;
  for (const OrderingRun& r : out.runs) sweeps.push_back({order_name(r.kind), r.order8, r.order4});
  const ConfigValue ms = [&](const std::vector<Precision>& p) { return config_latency_ms(lat, c.names, p); };
  const ConfigValue bytes = [&](const std::vector<Precision>& p) { return c.bytes(p); };
  out.pareto = ordering_points(
      c.n(), sweeps, c.req.pareto_points, probes.search.fn(), ms, bytes, src, c.req.range,
      out.runs.front().bisection.reference,
      [&](int64_t d, int64_t t) { ph.progress(d, t, fmt::format("{} fresh evaluations", probes.search.fresh())); },
      c.req.start);
  for (Precision p : {Precision::fp32, Precision::fp16, Precision::bf16, Precision::int8, Precision::int4}) {
    const auto t = table_ms(c, lat, c.uniform(p));
    if (!t) {
      out.warnings.push_back(fmt::format("latency table has no {} times: the uniform {} point is left out",
                                         precision_name(p), precision_name(p)));
      continue;
    }
    out.pareto.points.push_back(
        {"uniform", precision_name(p), c.n(), probes.search(c.uniform(p)), *t, c.bytes(c.uniform(p)), src});
  }
  probes.save();
  // areas: the first ordering against each other one, and the second against the last (Hessian-only vs random)
  std::vector<std::pair<std::string, std::string>> pairs;
  const auto& ks = c.req.orderings;
  for (size_t i = 1; i < ks.size(); ++i) pairs.push_back({order_name(ks[0]), order_name(ks[i])});
  if (ks.size() > 2) pairs.push_back({order_name(ks[1]), order_name(ks.back())});
  for (Space sp : {Space::latency, Space::bytes})
    for (const auto& [a, b] : pairs)
      out.areas.push_back({a, b, frontier_area(points_of(out.pareto.points, a), points_of(out.pareto.points, b), sp)});
}

void test_stage(Context& c, Probes& probes, SearchOutcome& out) {
  Phase ph(c, "test");
  int d = 0;
  for (Precision p : {Precision::fp32, Precision::fp16, Precision::bf16, Precision::int8, Precision::int4}) {
    out.test[precision_name(p)] = probes.test(c.uniform(p));
    ph.progress(++d, 6, precision_name(p));
  }
  out.test["chosen"] = probes.test(out.chosen_precisions);
  ph.progress(++d, 6, "chosen");
  probes.save();
  out.baseline_test = out.test.at(precision_name(c.req.reference));
  out.metric_test = out.test.at("chosen");
  const int64_t nonfinite = probes.test.score(out.chosen_precisions).nonfinite;
  out.within_range = c.req.range.ok(out.metric_test, out.baseline_test) && nonfinite == 0;
  if (nonfinite > 0)
    out.warnings.push_back(
        fmt::format("test split: the chosen configuration produced non-finite outputs on {} samples", nonfinite));
  if (!out.within_range)
    out.warnings.push_back(fmt::format(
        "test split: the chosen configuration scores {:.2f} %, below the range's threshold {:.2f} % (reference {} "
        "{:.2f} %)",
        out.metric_test, c.req.range.threshold(out.baseline_test), precision_name(c.req.reference), out.baseline_test));
}

// The end-to-end confirmation (native engine, docs/method.md step 5) of the chosen configuration and the 16-bit /
// fp32 baselines, beside the per-layer table sums.
void latency_comparison_stage(Context& c, const LatencyTable& lat, SearchOutcome& out) {
  Phase ph(c, "end-to-end latency");
  const Calibration& cal = out.calibration;
  auto e2e = [&](const Assignment& a) {
    return native::measure_assignment(c.model, a, c.latency_input, 3, c.req.latency_runs).median;
  };
  auto uniform = [&](Precision p) {
    return make_assignment(c.layers, c.uniform(p), cal, c.req.int4_group, &c.rounded);
  };
  out.end_to_end_available = true;
  // the chosen configuration and the two it is held against (all-int8: --objective bytes' latency bound;
  // all-int4), timed interleaved so that their ratios come from one measurement
  const std::vector<native::Stats> side =
      native::measure_assignments(c.model, {out.chosen, uniform(Precision::int8), uniform(Precision::int4)},
                                  c.latency_input, 3, c.req.latency_runs);
  out.end_to_end.chosen = side[0].median, out.end_to_end.int8 = side[1].median, out.end_to_end.int4 = side[2].median;
  ph.progress(1, 4, "chosen, int8, int4");
  out.end_to_end.fp16 = e2e(uniform(Precision::fp16));
  ph.progress(2, 4, "fp16");
  out.end_to_end.bf16 = e2e(uniform(Precision::bf16));
  ph.progress(3, 4, "bf16");
  out.end_to_end.fp32 = e2e(uniform(Precision::fp32));
  ph.progress(4, 4, "fp32");
  out.table = {table_ms(c, lat, out.chosen_precisions),      table_ms(c, lat, c.uniform(Precision::fp16)),
               table_ms(c, lat, c.uniform(Precision::bf16)), table_ms(c, lat, c.uniform(Precision::fp32)),
               table_ms(c, lat, c.uniform(Precision::int8)), table_ms(c, lat, c.uniform(Precision::int4))};
  out.latency_source = "end-to-end measured (native engine)";
}

}  // namespace mpq::quant::pipeline

namespace mpq::quant {

void SearchRequest::validate() const {
  range.validate();
  check(!weights.empty(), "search: no weights file given");
  check(!data.empty(), "search: no data folder given");
  one_sided_z(confidence);  // throws naming a value outside [0.5, 1)
  check(reference == Precision::fp32 || reference == Precision::fp16, "search: reference '{}': expected fp32 or fp16",
        precision_name(reference));
  check(start == Precision::fp16 || start == Precision::bf16, "search: start '{}': expected fp16 or bf16",
        precision_name(start));
  check(int4_group == 0 || int4_group == 32 || int4_group == 64 || int4_group == 128,
        "search: int4 group {}: expected 0 (per channel), 32, 64 or 128", int4_group);
  check(draws > 0, "search: draws {} must be positive", draws);
  check(dep_samples > 0, "search: dependency samples {} must be positive", dep_samples);
  check(window >= 0, "search: window {} must be >= 0", window);
  check(latency_runs > 0, "search: latency runs {} must be positive", latency_runs);
  check(std::isfinite(latency_tolerance) && latency_tolerance >= 0 && latency_tolerance < 1,
        "search: latency tolerance {} must be in [0, 1) (a fraction of the fastest latency)", latency_tolerance);
  check(pareto_points == 0 || pareto_points >= 2, "search: pareto points {} must be 0 (every k) or >= 2",
        pareto_points);
  check(!orderings.empty(), "search: no ordering requested");
  check(!max_bytes || (*max_bytes > 0 && std::isfinite(*max_bytes)), "search: max bytes must be positive");
  check(!(estimate_latency && !latency_file.empty()), "search: a latency file and the estimate exclude each other");
}

SearchOutcome run_search(models::Model& model, const SearchRequest& request, SearchObserver& observer) {
  using namespace pipeline;
  request.validate();
  // a cache folder that cannot be written is an error, found before the analysis rather than after it
  if (!request.cache_dir.empty()) check_output_dir(request.cache_dir);
  SearchOutcome out;
  out.request = request;
  Context c(model, request, observer);
  c.out = &out;
  out.model = model.name();
  out.metric_label = c.task.metric_label;
  out.layers = c.layers;
  out.numel = c.numel;
  out.calib_samples = int64_t(c.task.splits.calib.size());
  out.search_samples = int64_t(c.task.splits.search.size());
  out.test_samples = int64_t(c.task.splits.test.size());
  out.split_note = c.task.split_note;
  out.threads = num_threads();
  out.bytes = c.bytes;
  if (request.max_bytes) check_max_bytes(*request.max_bytes, c.bytes, model.name());

  if (request.int4_group > 0)  // the documented per-layer fallback, shown with the report's notes
    for (const auto& l : c.layers) {
      if (l.weight.empty()) continue;
      const Tensor& w = *c.tensors.at(l.weight);
      const int64_t K = w.numel() / w.size(0);
      if (K % request.int4_group != 0)
        out.warnings.push_back(
            fmt::format("int4 group {} does not divide layer '{}''s {} inputs per output: that "
                        "layer's int4 weights use one scale per output channel",
                        request.int4_group, l.name, K));
    }
  out.latency = latency_stage(c, out.latency_profile);
  json cal_inputs;
  out.calibration = calibration_stage(c, cal_inputs);
  rounding_stage(c, out.calibration, cal_inputs);
  out.traces = hessian_stage(c);
  out.hessian_samples = int64_t(c.calib_sub.size());
  out.hessian_loss = request.hessian_loss.value_or(model.name() == "bert" ? HessianLoss::distill : HessianLoss::labels);
  out.dependencies = dependency_stage(c, out.calibration, cal_inputs);
  out.scores = score_stage(c, out.traces, out.dependencies);

  Probes probes(c, out.calibration, cal_inputs);
  out.runs = bisection_stage(c, out.scores, probes, out.latency);
  const SearchResult& chosen = out.runs.front().bisection;
  if (!chosen.memory_ok) {
    for (const auto& w : chosen.warnings) observer.log("  " + w);
    fail(
        "search: no configuration inside the accuracy range fits max bytes {:.0f} (the most lowered one in range, k8 "
        "{} "
        "k4 {}, needs {:.0f} weight bytes; the all-int4 footprint is {:.0f})",
        *request.max_bytes, chosen.k8, chosen.k4, chosen.weight_bytes, c.bytes(c.uniform(Precision::int4)));
  }
  for (const auto& w : chosen.warnings)
    out.warnings.push_back(fmt::format("{}: {}", order_name(request.orderings[0]), w));
  out.chosen_precisions = chosen.precisions;
  out.chosen = make_assignment(c.layers, chosen.precisions, out.calibration, request.int4_group, &c.rounded);
  out.chosen_search_metric = probes.search(chosen.precisions);

  pareto_stage(c, probes, out.latency, out);
  test_stage(c, probes, out);
  latency_comparison_stage(c, out.latency, out);
  out.rounded = c.rounded;
  out.evaluations_fresh = probes.search.fresh() + probes.test.fresh();
  out.cached_configurations = probes.cached_configurations;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - c.t0).count();
  return out;
}

}  // namespace mpq::quant
