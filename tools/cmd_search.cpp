// `mpq search`: the mixed-precision search of method.md on a CNN (ImageNet-style folder) or BERT (SST-2).
//   1. the task: seeded disjoint calibration / search / test splits (quant/task.h make_task);
//   2. activation calibration (observers, per-layer pick by model-output error)             [cached]
//   3. Hutchinson Hessian traces on calibration samples                                      [cached]
//   4. dependencies dL_i, I_ij at int8 and int4 (base: the start precision) on calib. samples [cached]
//   5. orderings (augmented, Hessian-only, single-effect-only, random) and a two-stage bisection per
//      ordering on the search split; every evaluated configuration is memoised               [cached]
//   6. the Pareto sweeps of every ordering + the uniform points (quant/report.h)             [cached evals]
//   7. the first ordering's configuration written as a config file; the metric of the reference, the
//      uniform precisions and the chosen configuration on the test split; latency from the per-layer table
//      (measured here with the native executor and cached, or --latency from `mpq profile`, or with
//      --estimate-latency the MAC-based placeholder labelled ESTIMATE);
//      the end-to-end confirmation when a measurer is available (see end_to_end_measurer below);
//   8. report DIR: report.json, report.html, pareto.csv, pareto.svg, pareto_zoom.svg, probes.csv.
// Metrics are in percent throughout (top-1 %, accuracy %); --max-drop is in percentage points.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/autograd/node.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/threading.h"
#include "models/native/native.h"
#include "models/zoo.h"
#include "ops/ops.h"
#include "quant/cache.h"
#include "quant/config.h"
#include "quant/dependency.h"
#include "quant/ordering.h"
#include "quant/report.h"
#include "quant/search.h"
#include "quant/task.h"
#include "tools/cli.h"
#include "tools/native_run.h"
#include "tools/progress.h"
#include "tools/search_html.h"

namespace mpq::cli {
namespace {

using nlohmann::json;
using namespace mpq::quant;

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// End-to-end latency confirmation (method.md step 5): compiles a configuration for this model with the
// native executor (models/native/native.h) and returns its measured batch-1 median latency in ms
// (tools/native_run.h measure_assignment: 3 warm-up runs, then `runs` timed runs).
using E2eLatency = std::function<double(const Assignment&)>;
E2eLatency end_to_end_measurer(models::Model& model, const models::Batch& input, int runs) {
  return [&model, input, runs](const Assignment& a) { return measure_assignment(model, a, input, 3, runs).median; };
}

bool table_covers(const LatencyTable& t, const std::vector<std::string>& names, Precision p) {
  for (const std::string& n : names) {
    auto it = t.ms.find(n);
    if (it == t.ms.end() || !it->second.count(p)) return false;
  }
  return true;
}

json opt_json(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

int run_search(const Args& args) {
  args.check_known({"model",        "weights",
                    "data",         "max-drop",
                    "min-relative", "out",
                    "report",       "seed",
                    "threads",      "json",
                    "calib",        "search",
                    "test",         "dep-samples",
                    "draws",        "window",
                    "latency",      "cache",
                    "batch",        "max-bytes",
                    "orderings",    "pareto-points",
                    "no-pareto",    "reference",
                    "hessian-loss", "signed-interactions",
                    "int4-group",   "estimate-latency",
                    "latency-runs", "seq",
                    "eval",         "confidence",
                    "start"});
  const auto t0 = std::chrono::steady_clock::now();
  const std::string model_name = args.require("model"), weights = args.require("weights");
  const std::string data_dir = args.require("data"), out = args.require("out"), report = args.require("report");
  AccuracyRange range;
  if (args.has("max-drop")) range.max_drop = args.get_double("max-drop", 0);  // percentage points
  if (args.has("min-relative")) range.min_relative = args.get_double("min-relative", 0);
  range.validate();
  const uint64_t seed = uint64_t(args.get_int("seed", 0));
  const int64_t int4_group = args.get_int("int4-group", 0);
  check(int4_group == 0 || int4_group == 32 || int4_group == 64 || int4_group == 128,
        "--int4-group {}: expected 0 (per channel), 32, 64 or 128", int4_group);
  // --confidence C: a configuration is inside the range only when the one-sided lower confidence bound of its
  // search-split metric is, paired against the reference configuration on the same samples:
  //   metric - z(C) * 100 * paired_standard_error(hits, reference hits) >= threshold   (quant/search.h)
  // 0.5 (the default, z = 0) is the plain estimate of the paper's method. The bound guards the test split
  // against a search split on which a configuration is lucky: on a few hundred samples one image is
  // 0.1-0.8 points.
  const double confidence = args.get_double("confidence", 0.5);
  const double conf_z = one_sided_z(confidence);
  // --start: the 16-bit precision every layer starts from and the search lowers from (method.md: fp16).
  // bf16 is the faster 16-bit format on CPUs with AVX512-BF16 (this one: no FP16 arithmetic, so fp16 layers
  // convert in registers and run f32 FMAs), at a small accuracy cost of its own.
  const std::string start_name = args.get("start", "fp16");
  check(start_name == "fp16" || start_name == "bf16", "--start '{}': expected fp16 or bf16", start_name);
  const Precision start_p = parse_precision(start_name);
  const std::string reference = args.get("reference", "fp32");
  check(reference == "fp32" || reference == "fp16", "--reference '{}': expected fp32 or fp16", reference);
  std::optional<double> max_bytes;
  if (args.has("max-bytes")) max_bytes = args.get_double("max-bytes", 0);
  std::vector<OrderKind> kinds;
  {
    const std::string list = args.get("orderings", "augmented,hessian,single,random");
    for (size_t a = 0; a <= list.size();) {
      const size_t b = std::min(list.find(',', a), list.size());
      kinds.push_back(parse_order(list.substr(a, b - a)));
      a = b + 1;
    }
  }
  // Accuracy probes (bisection, Pareto sweeps, test split): "simulated" runs the fake-quant forward of the
  // autograd model (quant/fake_quant.h); "native" compiles each configuration with the native executor and
  // runs the real kernels (same quantizers and rounding; logits equal up to f32 summation order, see
  // tests/test_native_*.cpp), several times faster on the CNNs. The analysis (calibration, Hessian,
  // dependencies) always runs on the autograd model.
  const std::string eval_engine = args.get("eval", "simulated");
  check(eval_engine == "simulated" || eval_engine == "native", "--eval '{}': expected simulated or native",
        eval_engine);
  const int pareto_points = args.get_int("pareto-points", 9);
  const bool pareto = !args.flag("no-pareto");
  const bool as_json = args.flag("json");
  auto log = [&](const std::string& s) { fmt::print(stderr, "[{:6.1f} s] {}\n", seconds_since(t0), s); };
  std::vector<std::string> warnings;

  // 1. model, task, layers
  auto model = models::load_model(model_name, weights);  // unknown names: a clear error from the zoo
  TaskOptions topt;
  topt.calib = args.get_int("calib", -1), topt.search = args.get_int("search", -1);
  topt.test = args.get_int("test", -1), topt.batch = args.get_int("batch", -1);
  Task task = make_task(*model, weights, data_dir, topt, seed);
  TaskEvaluator& ev = *task.ev;
  const Splits& sp = task.splits;
  check(!sp.calib.empty() && !sp.search.empty() && !sp.test.empty(),
        "search: every split needs samples (calib {}, search {}, test {})", sp.calib.size(), sp.search.size(),
        sp.test.size());
  const std::string metric_label = task.metric_label;
  const std::string hessian_loss = args.get("hessian-loss", model_name == "bert" ? "distill" : "labels");
  check(hessian_loss == "labels" || hessian_loss == "distill", "--hessian-loss '{}': expected labels or distill",
        hessian_loss);
  const std::vector<models::QuantLayer> layers = model->quant_layers();
  std::vector<std::string> names;
  for (const auto& l : layers) names.push_back(l.name);
  const int n = int(layers.size());
  std::map<std::string, Tensor*> by_name;
  for (auto& [nm, t] : model->named_tensors()) by_name[nm] = t;
  std::vector<int64_t> numel;  // [N] weight elements (0 for the weightless attention matmuls)
  for (const auto& l : layers) {
    check(l.weight.empty() || by_name.count(l.weight), "search: layer {} names weight {} that the model lacks", l.name,
          l.weight);
    numel.push_back(l.weight.empty() ? 0 : by_name[l.weight]->numel());
  }
  auto uniform = [&](Precision p) { return std::vector<Precision>(size_t(n), p); };
  const double int4_bytes = weight_bytes(numel, uniform(Precision::int4));
  if (max_bytes) check_max_bytes(*max_bytes, numel, model_name);
  const WeightsId wid = weights_identity(weights);
  const AnalysisCache cache(args.get("cache", report + "/cache"));
  std::filesystem::create_directories(report);
  auto inputs = [&](const std::vector<int64_t>& idx, json settings) {
    settings["data"] = task.data_identity;
    return analysis_inputs(model_name, wid, idx, settings);
  };

  // latency table
  // --latency FILE (from `mpq profile`), else measured here with the native executor (cached like the rest of the
  // analysis, keyed by model, weights and measurement settings), or with --estimate-latency the MAC placeholder.
  const int latency_runs = args.get_int("latency-runs", 10);
  check(latency_runs > 0, "--latency-runs must be positive, got {}", latency_runs);
  const models::Batch latency_in = latency_input(args, *model);
  LatencyTable lat;
  if (args.has("latency")) {
    lat = load_latency_table(args.get("latency"));
  } else if (args.flag("estimate-latency")) {
    lat = mac_estimate_latency_table(layers);
  } else {
    const json lat_in = analysis_inputs(model_name, wid, {},
                                        {{"what", "latency table"},
                                         {"threads", num_threads()},
                                         {"runs", latency_runs},
                                         {"int4_group", int4_group},
                                         {"isa_cap", isa_name(isa_cap())}});
    json table;
    if (auto c = cache.load("latency", lat_in)) {
      table = *c;
      log("latency table: cached (" + table.value("source", std::string()) + ")");
    } else {
      log("latency table: profiling every layer at fp32 / fp16 / bf16 / int8 / int4 with the native executor");
      const Calibration lat_cal = calibrate_batches(*model, {latency_in});  // ranges do not change speed
      table = measure_latency_table(
          *model, {Precision::fp32, Precision::fp16, Precision::bf16, Precision::int8, Precision::int4}, lat_cal,
          int4_group, latency_in, 3, latency_runs, !as_json);
      cache.store("latency", lat_in, table);
    }
    std::ofstream(report + "/latency.json") << table.dump(1) << "\n";
    lat = latency_table_from_json(table, "measured latency table");
  }
  for (Precision p : {start_p, Precision::int8, Precision::int4})
    for (const std::string& nm : names) {
      auto it = lat.ms.find(nm);
      check(it != lat.ms.end() && it->second.count(p), "latency table '{}' ({}): layer '{}' has no {} time",
            args.get("latency", "MAC estimate"), lat.source, nm, precision_name(p));
    }
  const std::string lat_label =
      lat.measured ? "measured per-layer table (" + lat.source + ")" : "ESTIMATE (MAC-based placeholder, not measured)";
  const ConfigValue table_ms = [&](const std::vector<Precision>& p) { return config_latency_ms(lat, names, p); };
  const ConfigValue bytes_of = [&](const std::vector<Precision>& p) { return weight_bytes(numel, p); };
  auto table_opt = [&](Precision p) -> std::optional<double> {
    if (!table_covers(lat, names, p)) return std::nullopt;
    return table_ms(uniform(p));
  };
  json phases = json::object();

  // 2. calibration
  CalibrateOptions copt;
  const json cal_in = inputs(sp.calib, {{"what", "calibration"},
                                        {"select", "model_output"},
                                        {"select_samples", copt.select_samples},
                                        {"percentile", copt.observers.percentile},
                                        {"grid", copt.observers.grid}});
  Calibration cal;
  {
    const auto tp = std::chrono::steady_clock::now();
    if (auto c = cache.load("calibration", cal_in)) {
      cal = calibration_from_json(*c);
      log("calibration: cached");
    } else {
      log(fmt::format("calibration on {} samples ...", sp.calib.size()));
      cal = calibrate(*model, ev, sp.calib, copt);
      cache.store("calibration", cal_in, to_json(cal));
      log(fmt::format("calibration on {} samples done", sp.calib.size()));
    }
    phases["calibration"] = seconds_since(tp);
  }

  // 3. Hessian traces (weightless layers -- BERT's attention matmuls -- have no weight Hessian: Omega 0)
  const int draws = args.get_int("draws", 16);
  check(draws > 0, "--draws {} must be positive", draws);
  const int64_t dep_n = std::min<int64_t>(args.get_int("dep-samples", 8), int64_t(sp.calib.size()));
  check(dep_n > 0, "--dep-samples must be positive");
  const std::vector<int64_t> calib_sub(sp.calib.begin(), sp.calib.begin() + dep_n);
  const json tr_in = inputs(calib_sub, {{"what", "traces"}, {"draws", draws}, {"seed", seed}, {"loss", hessian_loss}});
  std::vector<int> weighted;  // layer indices with a weight, in trace order
  for (int i = 0; i < n; ++i)
    if (!layers[size_t(i)].weight.empty()) weighted.push_back(i);
  HutchinsonResult hr;
  {
    Progress pr("hessian", draws);
    if (auto c = cache.load("traces", tr_in)) {
      hr = hutchinson_from_json(*c);
      log("hessian traces: cached");
    } else {
      const models::Batch hb = ev.batch(calib_sub);
      Tensor target;  // [S, C] fp32 output distribution (distill)
      if (hessian_loss == "distill") {
        autograd::NoGradGuard ng;
        ScopedHook none(*model, nullptr);
        target = ops::softmax(model->forward(hb, false), -1);
      }
      std::vector<Tensor> ws;
      for (int i : weighted) {
        Tensor* w = by_name[layers[size_t(i)].weight];
        w->set_requires_grad(true);
        ws.push_back(*w);
      }
      const Tensor logits = model->forward(hb, false);  // [S, C]
      const Tensor loss =
          hessian_loss == "distill" ? ops::soft_cross_entropy(logits, target) : ops::cross_entropy(logits, hb.labels);
      HutchinsonOptions ho;
      ho.rel_tol = 1e-2;
      ho.max_draws = draws;
      ho.min_draws = std::min(8, draws);
      ho.seed = seed;
      ho.progress = [&](int d, double move) {
        pr.update(d, fmt::format("largest relative move {:.1e} (ETA at the cap; stops earlier when < 1e-2)", move));
      };
      hr = hutchinson_traces(loss, ws, ho);
      for (auto& w : ws) w.set_requires_grad(false);
      cache.store("traces", tr_in, to_json(hr));
      pr.finish();
      log(fmt::format("hessian traces: {} draws ({}) on {} samples, loss {}", hr.draws,
                      hr.converged ? "converged" : "cap", dep_n, hessian_loss));
    }
    phases["hessian"] = pr.elapsed();
    check(hr.trace.size() == weighted.size(), "search: cached traces have {} entries for {} weighted layers",
          hr.trace.size(), weighted.size());
  }

  // 4. dependencies at int8 and int4
  DependencyOptions dopt;
  dopt.window = args.get_int("window", 0);
  dopt.int4_group = int4_group;
  dopt.base = start_p;
  std::map<Precision, DependencyResult> deps;
  {
    const auto tp = std::chrono::steady_clock::now();
    for (Precision p : {Precision::int8, Precision::int4}) {
      dopt.precision = p;
      const json in = inputs(calib_sub, {{"what", "dependencies"},
                                         {"precision", precision_name(p)},
                                         {"window", dopt.window},
                                         {"base", precision_name(start_p)},
                                         {"int4_group", int4_group},
                                         {"loss", "distill_fp32"},
                                         {"calibration", analysis_key(cal_in)}});
      if (auto c = cache.load("dependencies", in)) {
        deps[p] = dependency_from_json(*c);
        log(fmt::format("dependencies {}: cached", precision_name(p)));
        continue;
      }
      Progress pr(fmt::format("dependencies {}", precision_name(p)), 0);
      deps[p] = measure_dependencies(layers, model_set_loss(*model, ev, calib_sub, cal, dopt), dopt,
                                     [&](int64_t d, int64_t t) {
                                       pr.set_total(t);
                                       pr.update(d, "loss probes on the calibration samples");
                                     });
      pr.finish();
      cache.store("dependencies", in, to_json(deps[p]));
      log(fmt::format("dependencies {}: {} pairs, {} evaluations, {:.1f} s", precision_name(p), deps[p].pairs.size(),
                      deps[p].evaluations, deps[p].seconds));
    }
    phases["dependencies"] = seconds_since(tp);
  }

  // 5. scores, orderings, bisection
  std::map<Precision, LayerScores> scores;
  for (Precision p : {Precision::int8, Precision::int4}) {
    std::vector<double> omega(size_t(n), 0.0);
    for (size_t w = 0; w < weighted.size(); ++w) {
      const Tensor& wt = *by_name[layers[size_t(weighted[w])].weight];
      const int64_t row = wt.numel() / wt.size(0), g = int4_group > 0 && row % int4_group == 0 ? int4_group : 0;
      omega[size_t(weighted[w])] = hessian_omega(hr.trace[w], wt, p, g);
    }
    scores[p] = augmented_scores(omega, deps[p], !args.flag("signed-interactions"));
  }
  auto metric_on = [&](const std::vector<int64_t>& idx) -> ConfigScorer {
    return [&, idx](const std::vector<Precision>& p) {
      auto score = [](const TaskResult& t) { return ConfigScore{100 * t.metric, t.hits}; };
      if (eval_engine == "native") {
        native::CompiledModel cm(*model, native::compile(*model, make_assignment(names, p, cal, int4_group),
                                                         native::CompileOptions::reproducible()));
        return score(ev.evaluate(cm, idx));
      }
      if (std::all_of(p.begin(), p.end(), [](Precision q) { return q == Precision::fp32; }))
        return score(ev.evaluate(*model, idx));  // the plain fp32 model
      ScopedHook h(*model, std::make_shared<FakeQuantHook>(make_assignment(names, p, cal, int4_group)));
      return score(ev.evaluate(*model, idx));
    };
  };
  auto memo_key = [&](const char* split, const std::vector<int64_t>& idx) {
    return inputs(idx, {{"what", "metric_memo"},
                        {"split", split},
                        {"calibration", analysis_key(cal_in)},
                        {"int4_group", int4_group},
                        {"engine", eval_engine},
                        {"unit", "percent"},
                        {"per_sample_hits", true}});
  };
  MemoMetric search_memo = MemoMetric::with_hits(metric_on(sp.search)),
             test_memo = MemoMetric::with_hits(metric_on(sp.test));
  const json search_memo_in = memo_key("search", sp.search), test_memo_in = memo_key("test", sp.test);
  if (auto c = cache.load("metric_memo", search_memo_in)) search_memo.merge_json(*c);
  if (auto c = cache.load("metric_memo", test_memo_in)) test_memo.merge_json(*c);
  const size_t cached_configs = search_memo.size() + test_memo.size();
  auto save_memos = [&] {
    cache.store("metric_memo", search_memo_in, search_memo.to_json());
    cache.store("metric_memo", test_memo_in, test_memo.to_json());
  };

  const Precision ref_p = reference == "fp32" ? Precision::fp32 : Precision::fp16;
  // what the bisection compares with the range: the plain search-split metric, or (--confidence > 0.5) its
  // paired lower bound against the reference configuration
  const ConfigMetric bounded = paired_lower_bound(search_memo, uniform(ref_p), conf_z);
  SearchOptions so;
  so.range = range;
  so.reference = search_memo(uniform(ref_p));
  so.weight_numel = numel;
  so.max_bytes = max_bytes;
  so.latency = table_ms;
  so.metric_name = metric_label + " %";
  so.start = start_p;
  std::vector<std::pair<OrderKind, SearchResult>> searches;
  std::map<OrderKind, std::pair<std::vector<int>, std::vector<int>>> orders;
  {
    const auto tp = std::chrono::steady_clock::now();
    for (OrderKind k : kinds) {
      orders[k] = {make_ordering(scores[Precision::int8], k, seed), make_ordering(scores[Precision::int4], k, seed)};
      Progress pr(fmt::format("bisection {}", order_name(k)), 0);
      so.progress = [&](const Probe& p, int64_t done, int64_t max_total) {
        pr.set_total(max_total);
        pr.update(done,
                  fmt::format("stage {} k {} -> {:.2f} % ({})", p.stage, p.k, p.metric, p.ok ? "inside" : "outside"));
      };
      SearchResult r = bisection_search(n, orders[k].first, orders[k].second, bounded, so);
      pr.finish();
      log(fmt::format(
          "bisection ({}): k8 {} k4 {}  search {} {:.2f} %{} (reference {} {:.2f} %, {} {:.2f} %)  {} "
          "evaluations  {} warnings",
          order_name(k), r.k8, r.k4, metric_label, r.final_metric,
          conf_z == 0
              ? std::string()
              : fmt::format(" ({:g} % lower bound; estimate {:.2f} %)", 100 * confidence, search_memo(r.precisions)),
          reference, r.reference, start_name, r.baseline, r.evaluations, r.warnings.size()));
      searches.push_back({k, std::move(r)});
    }
    phases["bisection"] = seconds_since(tp);
  }
  save_memos();
  const SearchResult& chosen = searches.front().second;
  if (!chosen.memory_ok) {
    for (const auto& w : chosen.warnings) fmt::print(stderr, "  {}\n", w);
    fail(
        "search: no configuration inside the accuracy range fits --max-bytes {:.0f} (the most lowered one in range, "
        "k8 {} k4 {}, needs {:.0f} weight bytes; the all-int4 footprint is {:.0f})",
        *max_bytes, chosen.k8, chosen.k4, chosen.weight_bytes, int4_bytes);
  }
  for (const auto& w : chosen.warnings) warnings.push_back(fmt::format("{}: {}", order_name(kinds.front()), w));

  // 6. Pareto sweeps + uniform points (search split)
  ParetoSweeps ps;
  std::vector<OrderingSweep> sweeps_in;
  const std::string src_label = lat.measured ? "measured" : "ESTIMATE";
  if (pareto) {
    for (OrderKind k : kinds) sweeps_in.push_back({order_name(k), orders[k].first, orders[k].second});
    Progress pr("pareto sweeps", 0);
    ps = ordering_points(
        n, sweeps_in, pareto_points, search_memo.fn(), table_ms, bytes_of, src_label, range, chosen.reference,
        [&](int64_t d, int64_t t) {
          pr.set_total(t);
          pr.update(d, fmt::format("{} fresh evaluations", search_memo.fresh()));
        },
        start_p);
    phases["pareto"] = pr.finish();
    for (Precision p : {Precision::fp32, Precision::fp16, Precision::bf16, Precision::int8, Precision::int4}) {
      const auto ms = table_opt(p);
      if (!ms) {
        warnings.push_back(fmt::format("latency table has no {} times: the uniform {} point is left out",
                                       precision_name(p), precision_name(p)));
        continue;
      }
      ps.points.push_back(
          {"uniform", precision_name(p), n, search_memo(uniform(p)), *ms, bytes_of(uniform(p)), src_label});
    }
    save_memos();
  }

  // 7. test split: reference, uniform precisions, chosen
  json test = json::object();
  {
    Progress pr("test split", 6);
    int d = 0;
    for (Precision p : {Precision::fp32, Precision::fp16, Precision::bf16, Precision::int8, Precision::int4}) {
      test[precision_name(p)] = test_memo(uniform(p));
      pr.update(++d, precision_name(p));
    }
    test["chosen"] = test_memo(chosen.precisions);
    pr.update(++d, "chosen");
    phases["test"] = pr.finish();
  }
  save_memos();
  const double baseline_test = test[precision_name(ref_p)].get<double>(), metric_test = test["chosen"].get<double>();
  const bool test_ok = range.ok(metric_test, baseline_test);
  if (!test_ok)
    warnings.push_back(
        fmt::format("test split: the chosen configuration scores {:.2f} %, below the range's threshold "
                    "{:.2f} % (reference {} {:.2f} %)",
                    metric_test, range.threshold(baseline_test), reference, baseline_test));

  // latency: the end-to-end confirmation when available, else the per-layer table
  const E2eLatency e2e = end_to_end_measurer(*model, latency_in, latency_runs);
  json e2e_j = {{"available", bool(e2e)}};
  std::map<std::string, std::optional<double>> e2e_ms;
  const Assignment chosen_a = make_assignment(names, chosen.precisions, cal, int4_group);
  if (e2e) {
    Progress pr("end-to-end latency", 4);
    e2e_ms["chosen"] = e2e(chosen_a);
    pr.update(1, "chosen");
    int d = 1;
    for (Precision p : {Precision::fp16, Precision::bf16, Precision::fp32}) {
      e2e_ms[precision_name(p)] = e2e(make_assignment(names, uniform(p), cal, int4_group));
      pr.update(++d, precision_name(p));
    }
    pr.finish();
  }
  for (const char* k : {"chosen", "fp16", "bf16", "fp32"}) e2e_j[std::string(k) + "_ms"] = opt_json(e2e_ms[k]);
  std::map<std::string, std::optional<double>> tab = {
      {"chosen", table_ms(chosen.precisions)}, {"fp16", table_opt(Precision::fp16)},
      {"bf16", table_opt(Precision::bf16)},    {"fp32", table_opt(Precision::fp32)},
      {"int8", table_opt(Precision::int8)},    {"int4", table_opt(Precision::int4)}};
  auto& use = e2e ? e2e_ms : tab;
  const std::string latency_source =
      e2e ? "end-to-end measured (native executor)" : "per-layer table sum: " + lat_label;
  auto reduction = [&](const char* base) -> json {
    if (!use["chosen"] || !use[base]) return nullptr;
    return 1 - *use["chosen"] / *use[base];
  };

  // 8. outputs
  QuantConfig qc;
  qc.model = model_name;
  qc.weights = wid;
  qc.layers = chosen_a;
  save_config(out, qc, layers);

  json areas = json::array();
  std::vector<std::pair<std::string, std::string>> pairs;
  for (size_t i = 1; i < kinds.size(); ++i) pairs.push_back({order_name(kinds[0]), order_name(kinds[i])});
  if (kinds.size() > 2) pairs.push_back({order_name(kinds[1]), order_name(kinds.back())});
  for (const auto& [a, b] : pairs) {
    const FrontierArea fa = frontier_area(points_of(ps.points, a), points_of(ps.points, b));
    areas.push_back({{"a", a},
                     {"b", b},
                     {"lo_ms", fa.lo_ms},
                     {"hi_ms", fa.hi_ms},
                     {"area", fa.area},
                     {"positive", fa.positive},
                     {"negative", fa.negative},
                     {"mean_diff", fa.mean_diff},
                     {"empty", fa.empty}});
  }
  json sweeps = json::array();
  for (const OrderingFrontier& f : ps.sweeps)
    sweeps.push_back({{"ordering", f.name},
                      {"int8_best_k", f.int8.best_k},
                      {"int8_prefix_k", f.int8.prefix_k},
                      {"int4_best_k", f.int4.best_k},
                      {"int4_prefix_k", f.int4.prefix_k}});
  json results = json::array();
  for (const auto& [k, r] : searches) {
    json j = r.to_json();
    j["ordering"] = order_name(k);
    results.push_back(j);
  }
  const int64_t fresh = search_memo.fresh() + test_memo.fresh();
  json summary = {
      {"model", model_name},
      {"weights", weights},
      {"data", data_dir},
      {"metric_name", metric_label},
      {"metric_unit", "percent"},
      {"reference", reference},
      {"range",
       {{"max_drop", opt_json(range.max_drop)},
        {"min_relative", opt_json(range.min_relative)},
        {"threshold_search", range.threshold(chosen.reference)},
        {"threshold_test", range.threshold(baseline_test)}}},
      {"baseline_metric", baseline_test},
      {"metric", metric_test},
      {"within_range", test_ok},
      {"test", test},
      {"confidence", confidence},
      {"start", start_name},
      // chosen: the estimate; chosen_bound / the start precision: what the bisection compared with the range (the
      // estimate itself at confidence 0.5)
      {"search_split",
       {{"reference", chosen.reference},
        {start_name, chosen.baseline},
        {"chosen", search_memo(chosen.precisions)},
        {"chosen_bound", chosen.final_metric}}},
      {"k8", chosen.k8},
      {"k4", chosen.k4},
      {"latency_source", latency_source},
      {"latency_ms", opt_json(use["chosen"])},
      {"fp16_latency_ms", opt_json(use["fp16"])},
      {"bf16_latency_ms", opt_json(use["bf16"])},
      {"fp32_latency_ms", opt_json(use["fp32"])},
      {"reduction_vs_fp16", reduction("fp16")},
      {"reduction_vs_bf16", reduction("bf16")},
      {"reduction_vs_fp32", reduction("fp32")},
      {"latency_table",
       {{"source", lat.source},
        {"measured", lat.measured},
        {"label", lat_label},
        {"chosen_ms", opt_json(tab["chosen"])},
        {"fp16_ms", opt_json(tab["fp16"])},
        {"bf16_ms", opt_json(tab["bf16"])},
        {"fp32_ms", opt_json(tab["fp32"])},
        {"int8_ms", opt_json(tab["int8"])},
        {"int4_ms", opt_json(tab["int4"])}}},
      {"end_to_end", e2e_j},
      {"weight_bytes", chosen.weight_bytes},
      {"fp16_weight_bytes", weight_bytes(numel, uniform(Precision::fp16))},
      {"int4_weight_bytes", int4_bytes},
      {"max_bytes", opt_json(max_bytes)},
      {"evaluations", chosen.evaluations},
      {"evaluations_fresh", fresh},
      {"eval_engine", eval_engine},
      {"cached_configurations", cached_configs},
      {"splits",
       {{"calib", sp.calib.size()},
        {"search", sp.search.size()},
        {"test", sp.test.size()},
        {"seed", seed},
        {"note", task.split_note}}},
      {"hutchinson", {{"draws", hr.draws}, {"converged", hr.converged}, {"samples", dep_n}, {"loss", hessian_loss}}},
      {"dependencies",
       {{"int8",
         {{"pairs", deps[Precision::int8].pairs.size()},
          {"evaluations", deps[Precision::int8].evaluations},
          {"seconds", deps[Precision::int8].seconds}}},
        {"int4",
         {{"pairs", deps[Precision::int4].pairs.size()},
          {"evaluations", deps[Precision::int4].evaluations},
          {"seconds", deps[Precision::int4].seconds}}},
        {"samples", dep_n},
        {"window", dopt.window}}},
      {"omega_to_loss_scale", {{"int8", scores[Precision::int8].scale}, {"int4", scores[Precision::int4].scale}}},
      {"searches", results},
      {"pareto", {{"points", ps.points.size()}, {"grid_points", pareto_points}, {"areas", areas}, {"sweeps", sweeps}}},
      {"phases_seconds", phases},
      {"config", out},
      {"report", report},
      {"warnings", warnings},
      {"threads", num_threads()},
      {"seconds", seconds_since(t0)}};
  std::ofstream(report + "/report.json") << summary.dump(1) << "\n";
  std::ofstream(report + "/pareto.csv") << pareto_csv(ps.points);
  {
    std::ofstream csv(report + "/probes.csv");
    csv << "ordering,stage,k,metric,ok\n";
    for (const json& r : results)
      for (const json& p : r["probes"])
        csv << r["ordering"].get<std::string>() << "," << p["stage"] << "," << p["k"] << "," << p["metric"] << ","
            << p["ok"] << "\n";
  }
  const SearchHtml html = search_html(summary, ps.points, layers, chosen_a, lat);
  std::ofstream(report + "/pareto.svg") << html.svg_full;
  std::ofstream(report + "/pareto_zoom.svg") << html.svg_zoom;
  std::ofstream(report + "/report.html") << html.html;
  if (as_json) {
    fmt::print("{}\n", summary.dump());
    return 0;
  }
  fmt::print("{} on {} test samples ({}):\n", model_name, sp.test.size(), task.split_note);
  fmt::print(
      "  {} fp32 {:.2f}%  fp16 {:.2f}%  bf16 {:.2f}%  int8 {:.2f}%  int4 {:.2f}%  chosen (k8 {}, k4 {}) {:.2f}%\n",
      metric_label, test["fp32"].get<double>(), test["fp16"].get<double>(), test["bf16"].get<double>(),
      test["int8"].get<double>(), test["int4"].get<double>(), chosen.k8, chosen.k4, metric_test);
  auto ms = [](const std::optional<double>& v) { return v ? fmt::format("{:.3f} ms", *v) : std::string("n/a"); };
  auto pct = [](const json& v) {
    return v.is_null() ? std::string("n/a") : fmt::format("{:+.1f}%", -100 * v.get<double>());
  };
  fmt::print("  latency [{}]: chosen {} | fp16 {} ({} vs fp16) | bf16 {} ({}) | fp32 {} ({})\n", latency_source,
             ms(use["chosen"]), ms(use["fp16"]), pct(summary["reduction_vs_fp16"]), ms(use["bf16"]),
             pct(summary["reduction_vs_bf16"]), ms(use["fp32"]), pct(summary["reduction_vs_fp32"]));

  for (const json& a : areas)
    if (!a["empty"].get<bool>())
      fmt::print("  frontier area {} - {}: {:.4g} points x ms over [{:.3f}, {:.3f}] ms (mean {:+.3f} points)\n",
                 a["a"].get<std::string>(), a["b"].get<std::string>(), a["area"].get<double>(),
                 a["lo_ms"].get<double>(), a["hi_ms"].get<double>(), a["mean_diff"].get<double>());
  for (const auto& w : warnings) fmt::print("  warning: {}\n", w);
  fmt::print(
      "  config {}  report {}/report.html  {} evaluations by the bisection, {} fresh in all, wall {:.1f} s on "
      "{} threads\n",
      out, report, chosen.evaluations, fresh, seconds_since(t0), num_threads());
  return 0;
}

const Registrar reg(
    {"search", "mixed-precision PTQ search (Hessian + inter-layer dependencies + bisection) with a Pareto report",
     "mpq search --model {resnet50,mobilenetv2,bert} --weights PATH --data DIR (--max-drop POINTS | --min-relative R)\n"
     "           --out config.json --report DIR [--seed S] [--threads N] [--json]\n"
     "  range:    --max-drop POINTS (>= 0, absolute percentage points of the metric) or --min-relative R (in (0, 1]),\n"
     "            against --reference fp32 (default: the original model) or fp16, measured on the search split;\n"
     "            --confidence C in [0.5, 1): inside only when the one-sided C lower bound of the metric (paired\n"
     "            against the reference on the same samples) is; 0.5 (default) = the plain estimate\n"
     "  start:    --start fp16 (default, method.md) | bf16: the 16-bit precision every layer starts from and the\n"
     "            bisection lowers from (fp16 -> int8 -> int4, or bf16 -> int8 -> int4)\n"
     "  limits:   --max-bytes B (weight bytes of the quantizable layers; the fastest configuration within the\n"
     "            range and B is chosen)\n"
     "  latency:  per-layer table measured with the native executor at fp32/fp16/bf16/int8/int4 (cached;\n"
     "            --latency-runs 10), or --latency latency.json from `mpq profile`, or --estimate-latency (a\n"
     "            MAC-based ESTIMATE); the chosen configuration and the uniform points are then measured end to end\n"
     "  splits:   --calib N --search N --test N (-1 = default, test 0 = all remaining; images 16/128/256,\n"
     "            SST-2 64 train sentences / half of dev / the other half)\n"
     "  analysis: --dep-samples 8 --draws 16 --window 0 --int4-group 0|32|64|128 --hessian-loss labels|distill\n"
     "            --signed-interactions --cache DIR (default REPORT/cache) --batch B\n"
     "  report:   --orderings augmented,hessian,single,random (the first one's configuration is written)\n"
     "            --pareto-points 9 (k values per sweep; 0 = every k) --no-pareto\n"
     "  probes:   --eval simulated (fake-quant autograd forward, default) | native (each configuration compiled\n"
     "            and run by the native kernels)\n"
     "  --json prints one object: baseline_metric, metric (test split, percent), latency_ms, fp16_latency_ms,\n"
     "  bf16_latency_ms, fp32_latency_ms, reduction_vs_fp16/bf16/fp32, latency_source, evaluations, seconds, ...",
     run_search});

}  // namespace
}  // namespace mpq::cli
