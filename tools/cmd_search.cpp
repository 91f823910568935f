// `mpq search`: the mixed-precision search of method.md on a CNN with an ImageNet-style folder.
//   1. seeded disjoint calibration / search / test splits;
//   2. activation calibration (observers, per-layer pick by model-output error)      [cached]
//   3. Hutchinson Hessian traces on calibration images                                [cached]
//   4. dependencies dL_i, I_ij at int8 and int4 (base fp16) on calibration images     [cached]
//   5. augmented and Hessian-only orderings; two-stage bisection on the search split;
//   6. the chosen configuration written as a config file; accuracy of fp32 / fp16 / uniform int8 / chosen
//      configuration on the test split; latency from a per-layer table (--latency JSON) or, without one,
//      from the MAC-based placeholder, which the report labels an ESTIMATE.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/autograd/node.h"
#include "core/error.h"
#include "core/threading.h"
#include "models/cnn_common.h"
#include "models/zoo.h"
#include "ops/ops.h"
#include "quant/cache.h"
#include "quant/config.h"
#include "quant/dependency.h"
#include "quant/ordering.h"
#include "quant/search.h"
#include "quant/splits.h"
#include "quant/task.h"
#include "tools/cli.h"

namespace mpq::cli {
namespace {

using nlohmann::json;
using namespace mpq::quant;

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

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
                    "compare",      "signed-interactions",
                    "int4-group"});
  const auto t0 = std::chrono::steady_clock::now();
  const std::string model_name = args.require("model"), weights = args.require("weights");
  const std::string data_dir = args.require("data"), out = args.require("out"), report = args.require("report");
  AccuracyRange range;
  // --max-drop in top-1 percentage points (0.1 = 0.1 %); metrics are fractions internally
  if (args.has("max-drop")) range.max_drop = args.get_double("max-drop", 0) / 100.0;
  if (args.has("min-relative")) range.min_relative = args.get_double("min-relative", 0);
  range.validate();
  const uint64_t seed = uint64_t(args.get_int("seed", 0));
  const int64_t int4_group = args.get_int("int4-group", 0);
  check(int4_group == 0 || int4_group == 32 || int4_group == 64 || int4_group == 128,
        "--int4-group {}: expected 0 (per channel), 32, 64 or 128", int4_group);
  const bool as_json = args.flag("json");
  auto log = [&](const std::string& s) { fmt::print(stderr, "[{:6.1f} s] {}\n", seconds_since(t0), s); };

  auto model = models::load_model(model_name, weights);
  auto* cnn = dynamic_cast<models::CnnModel*>(model.get());
  check(cnn, "search: model '{}' has no task evaluator yet (image CNNs only)", model_name);
  const data::ImageNetFolder folder(data_dir);
  ImageTaskEvaluator ev(folder, cnn->preset(), args.get_int("batch", 16));
  const Splits sp = make_splits(int64_t(folder.size()), args.get_int("calib", 16), args.get_int("search", 128),
                                args.get_int("test", 256), seed);
  const std::vector<models::QuantLayer> layers = model->quant_layers();
  std::vector<std::string> names;
  for (const auto& l : layers) names.push_back(l.name);
  const int n = int(layers.size());
  const WeightsId wid = weights_identity(weights);
  const AnalysisCache cache(args.get("cache", report + "/cache"));
  std::filesystem::create_directories(report);

  // 2. calibration
  CalibrateOptions copt;
  const json cal_in = analysis_inputs(model_name, wid, sp.calib,
                                      {{"what", "calibration"},
                                       {"select", "model_output"},
                                       {"select_samples", copt.select_samples},
                                       {"percentile", copt.observers.percentile},
                                       {"grid", copt.observers.grid}});
  Calibration cal;
  if (auto c = cache.load("calibration", cal_in)) {
    cal = calibration_from_json(*c);
    log("calibration: cached");
  } else {
    cal = calibrate(*model, ev, sp.calib, copt);
    cache.store("calibration", cal_in, to_json(cal));
    log(fmt::format("calibration on {} images done", sp.calib.size()));
  }

  // 3. Hessian traces
  const int draws = args.get_int("draws", 16);
  const int64_t dep_n = std::min<int64_t>(args.get_int("dep-samples", 8), int64_t(sp.calib.size()));
  const std::vector<int64_t> calib_sub(sp.calib.begin(), sp.calib.begin() + dep_n);
  const json tr_in =
      analysis_inputs(model_name, wid, calib_sub, {{"what", "traces"}, {"draws", draws}, {"seed", seed}});
  std::map<std::string, Tensor*> by_name;
  for (auto& [nm, t] : model->named_tensors()) by_name[nm] = t;
  HutchinsonResult hr;
  if (auto c = cache.load("traces", tr_in)) {
    hr = hutchinson_from_json(*c);
    log("hessian traces: cached");
  } else {
    std::vector<Tensor> ws;
    for (const auto& l : layers) {
      check(by_name.count(l.weight), "search: layer {} names weight {} that the model lacks", l.name, l.weight);
      by_name[l.weight]->set_requires_grad(true);
      ws.push_back(*by_name[l.weight]);
    }
    data::ImageBatch b = folder.load_batch(calib_sub, cnn->preset());
    models::Batch mb;
    mb.images = b.images;  // [dep_n, 3, 224, 224]
    const Tensor loss = ops::cross_entropy(model->forward(mb, false), {b.labels.begin(), b.labels.end()});
    HutchinsonOptions ho;
    ho.rel_tol = 1e-2;
    ho.max_draws = draws;
    ho.min_draws = std::min(8, draws);
    ho.seed = seed;
    hr = hutchinson_traces(loss, ws, ho);
    for (auto& w : ws) w.set_requires_grad(false);
    cache.store("traces", tr_in, to_json(hr));
    log(fmt::format("hessian traces: {} draws ({})", hr.draws, hr.converged ? "converged" : "cap"));
  }

  // 4. dependencies at int8 and int4
  DependencyOptions dopt;
  dopt.window = args.get_int("window", 0);
  dopt.int4_group = int4_group;
  std::map<Precision, DependencyResult> deps;
  for (Precision p : {Precision::int8, Precision::int4}) {
    dopt.precision = p;
    const json in = analysis_inputs(model_name, wid, calib_sub,
                                    {{"what", "dependencies"},
                                     {"precision", precision_name(p)},
                                     {"window", dopt.window},
                                     {"int4_group", int4_group},
                                     {"loss", "distill_fp32"},
                                     {"calibration", analysis_key(cal_in)}});
    if (auto c = cache.load("dependencies", in)) {
      deps[p] = dependency_from_json(*c);
      log(fmt::format("dependencies {}: cached", precision_name(p)));
      continue;
    }
    deps[p] = measure_dependencies(
        layers, model_set_loss(*model, ev, calib_sub, cal, dopt), dopt,
        [&](int64_t d, int64_t t) { fmt::print(stderr, "\r  {} probe {}/{}   ", precision_name(p), d, t); });
    fmt::print(stderr, "\n");
    cache.store("dependencies", in, to_json(deps[p]));
    log(fmt::format("dependencies {}: {} pairs, {} evaluations, {:.1f} s", precision_name(p), deps[p].pairs.size(),
                    deps[p].evaluations, deps[p].seconds));
  }

  // 5. scores, orderings, bisection
  std::map<Precision, LayerScores> scores;
  for (Precision p : {Precision::int8, Precision::int4}) {
    std::vector<double> omega;
    for (size_t i = 0; i < layers.size(); ++i) {
      const Tensor& w = *by_name[layers[i].weight];
      const int64_t row = w.numel() / w.size(0), g = int4_group > 0 && row % int4_group == 0 ? int4_group : 0;
      omega.push_back(hessian_omega(hr.trace[i], w, p, g));
    }
    scores[p] = augmented_scores(omega, deps[p], !args.flag("signed-interactions"));
  }
  std::vector<int64_t> numel;
  for (const auto& l : layers) numel.push_back(by_name[l.weight]->numel());
  auto metric_on = [&](const std::vector<int64_t>& idx) -> ConfigMetric {
    return [&, idx](const std::vector<Precision>& p) {
      ScopedHook h(*model, std::make_shared<FakeQuantHook>(make_assignment(names, p, cal, int4_group)));
      return ev.evaluate(*model, idx).metric;
    };
  };
  SearchOptions so;
  so.range = range;
  so.weight_numel = numel;
  if (args.has("max-bytes")) so.max_bytes = args.get_double("max-bytes", 0);
  std::vector<OrderKind> kinds = {OrderKind::augmented};
  if (args.flag("compare")) kinds = {OrderKind::augmented, OrderKind::hessian, OrderKind::random};
  LatencyTable lat = args.has("latency") ? load_latency_table(args.get("latency")) : mac_estimate_latency_table(layers);
  const std::string lat_label = lat.measured ? "measured" : "ESTIMATE (MAC-based placeholder, not measured)";
  json results = json::array();
  SearchResult chosen;
  for (OrderKind k : kinds) {
    const auto o8 = make_ordering(scores[Precision::int8], k, seed),
               o4 = make_ordering(scores[Precision::int4], k, seed);
    const SearchResult r = bisection_search(n, o8, o4, metric_on(sp.search), so);
    if (k == kinds.front()) chosen = r;
    json j = r.to_json();
    j["ordering"] = order_name(k);
    j["latency_ms"] = config_latency_ms(lat, names, r.precisions);
    results.push_back(j);
    log(fmt::format("bisection ({}): k8 {} k4 {}  search top-1 {:.2f}% (fp16 {:.2f}%)  {} evaluations  {} warnings",
                    order_name(k), r.k8, r.k4, 100 * r.final_metric, 100 * r.baseline, r.evaluations,
                    r.warnings.size()));
  }

  // 6. outputs
  QuantConfig qc;
  qc.model = model_name;
  qc.weights = wid;
  qc.layers = make_assignment(names, chosen.precisions, cal, int4_group);
  save_config(out, qc, layers);
  auto test_metric = metric_on(sp.test);
  const std::vector<Precision> all16(size_t(n), Precision::fp16), all8(size_t(n), Precision::int8);
  const double t32 = ev.evaluate(*model, sp.test).metric, t16 = test_metric(all16), t8 = test_metric(all8),
               tc = test_metric(chosen.precisions);
  const double l16 = config_latency_ms(lat, names, all16), l8 = config_latency_ms(lat, names, all8),
               lc = config_latency_ms(lat, names, chosen.precisions);
  json summary = {
      {"model", model_name},
      {"weights", wid.to_json()},
      {"range", range.describe()},
      {"splits", {{"calib", sp.calib.size()}, {"search", sp.search.size()}, {"test", sp.test.size()}, {"seed", seed}}},
      {"hutchinson", {{"draws", hr.draws}, {"converged", hr.converged}}},
      {"dependencies",
       {{"int8",
         {{"pairs", deps[Precision::int8].pairs.size()},
          {"evaluations", deps[Precision::int8].evaluations},
          {"seconds", deps[Precision::int8].seconds}}},
        {"int4",
         {{"pairs", deps[Precision::int4].pairs.size()},
          {"evaluations", deps[Precision::int4].evaluations},
          {"seconds", deps[Precision::int4].seconds}}},
        {"samples", dep_n}}},
      {"omega_to_loss_scale", {{"int8", scores[Precision::int8].scale}, {"int4", scores[Precision::int4].scale}}},
      {"searches", results},
      {"test", {{"fp32", t32}, {"fp16", t16}, {"int8", t8}, {"chosen", tc}}},
      {"latency",
       {{"source", lat.source},
        {"label", lat_label},
        {"fp16_ms", l16},
        {"int8_ms", l8},
        {"chosen_ms", lc},
        {"reduction_vs_fp16", 1 - lc / l16}}},
      {"config", out},
      {"seconds", seconds_since(t0)},
      {"threads", num_threads()}};
  std::ofstream(report + "/report.json") << summary.dump(1) << "\n";
  {
    std::ofstream csv(report + "/probes.csv");
    csv << "ordering,stage,k,metric,ok\n";
    for (const json& r : results)
      for (const json& p : r["probes"])
        csv << r["ordering"].get<std::string>() << "," << p["stage"] << "," << p["k"] << "," << p["metric"] << ","
            << p["ok"] << "\n";
  }
  if (as_json) {
    fmt::print("{}\n", summary.dump());
    return 0;
  }
  fmt::print("{} on {} test images (disjoint from {} calibration / {} search images):\n", model_name, sp.test.size(),
             sp.calib.size(), sp.search.size());
  fmt::print("  top-1 fp32 {:.2f}%  fp16 {:.2f}%  uniform int8 {:.2f}%  chosen (k8 {}, k4 {}) {:.2f}%\n", 100 * t32,
             100 * t16, 100 * t8, chosen.k8, chosen.k4, 100 * tc);
  fmt::print("  latency [{}]: fp16 {:.2f} ms, int8 {:.2f} ms, chosen {:.2f} ms ({:+.1f}% vs fp16)\n", lat_label, l16,
             l8, lc, -100 * (1 - lc / l16));
  for (const auto& w : chosen.warnings) fmt::print("  warning: {}\n", w);
  fmt::print("  config {}  report {}/report.json  wall {:.1f} s on {} threads\n", out, report, seconds_since(t0),
             num_threads());
  return 0;
}

const Registrar reg({"search", "mixed-precision PTQ search (Hessian + inter-layer dependencies + bisection)",
                     "mpq search --model M --weights PATH --data DIR (--max-drop PCT_POINTS | --min-relative R) "
                     "--out config.json --report DIR [--seed S] [--threads N] [--json] [--calib 16] [--search 128] "
                     "[--test 256] [--dep-samples 8] [--draws 16] [--window 0] [--latency table.json] [--cache DIR] "
                     "[--max-bytes B] [--compare] [--signed-interactions] [--int4-group 0|32|64|128]",
                     run_search});

}  // namespace
}  // namespace mpq::cli
