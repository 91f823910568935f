// report.json, the CSV files and the written files of a search, from its typed outcome.
#include "quant/pipeline_report.h"

#include <fmt/format.h>

#include "core/file_io.h"

#include "quant/config.h"

namespace mpq::quant {

using nlohmann::json;

namespace {

json opt_json(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json reduction(const std::optional<double>& chosen, const std::optional<double>& base) {
  if (!chosen || !base) return nullptr;
  return 1 - *chosen / *base;
}

json areas_json(const SearchOutcome& o) {
  json areas = json::array();
  for (const AreaRow& r : o.areas) {
    const FrontierArea& fa = r.area;
    areas.push_back({{"space", enum_name(kSpaceNames, fa.space)},
                     {"unit", fmt::format("points x {}", space_unit(fa.space))},
                     {"a", r.a},
                     {"b", r.b},
                     {"lo_ms", fa.lo_ms},
                     {"hi_ms", fa.hi_ms},
                     {"area", fa.area},
                     {"positive", fa.positive},
                     {"negative", fa.negative},
                     {"mean_diff", fa.mean_diff},
                     {"empty", fa.empty}});
  }
  return areas;
}

json sweeps_json(const SearchOutcome& o) {
  json sweeps = json::array();
  for (const OrderingFrontier& f : o.pareto.sweeps)
    sweeps.push_back({{"ordering", f.name},
                      {"int8_best_k", f.int8.best_k},
                      {"int8_prefix_k", f.int8.prefix_k},
                      {"int4_best_k", f.int4.best_k},
                      {"int4_prefix_k", f.int4.prefix_k}});
  return sweeps;
}

json searches_json(const SearchOutcome& o) {
  json results = json::array();
  for (const OrderingRun& r : o.runs) {
    json j = r.bisection.to_json();
    j["ordering"] = order_name(r.kind);
    results.push_back(j);
  }
  return results;
}

json analysis_json(const SearchOutcome& o) {
  const SearchRequest& r = o.request;
  auto dep = [&](Precision p) -> json {
    auto it = o.dependencies.find(p);
    if (it == o.dependencies.end()) return nullptr;
    return {
        {"pairs", it->second.pairs.size()}, {"evaluations", it->second.evaluations}, {"seconds", it->second.seconds}};
  };
  auto scale = [&](Precision p) -> json {
    auto it = o.scores.find(p);
    return it == o.scores.end() ? json(nullptr) : json(it->second.scale);
  };
  return {{"hutchinson",
           {{"draws", o.traces.draws},
            {"converged", o.traces.converged},
            {"samples", o.hessian_samples},
            {"loss", enum_name(kHessianLossNames, o.hessian_loss)}}},
          {"dependencies",
           {{"int8", dep(Precision::int8)},
            {"int4", dep(Precision::int4)},
            {"samples", o.hessian_samples},
            {"window", r.window}}},
          {"omega_to_loss_scale", {{"int8", scale(Precision::int8)}, {"int4", scale(Precision::int4)}}}};
}

json latency_json(const SearchOutcome& o) {
  const LatencyFigures& u = o.compared();
  const LatencyFigures& t = o.table;
  const std::string label = o.latency.measured ? "measured per-layer table (" + o.latency.source + ")"
                                               : "ESTIMATE (MAC-based placeholder, not measured)";
  return {{"latency_source", o.latency_source},
          {"latency_ms", opt_json(u.chosen)},
          {"fp16_latency_ms", opt_json(u.fp16)},
          {"bf16_latency_ms", opt_json(u.bf16)},
          {"fp32_latency_ms", opt_json(u.fp32)},
          {"reduction_vs_fp16", reduction(u.chosen, u.fp16)},
          {"reduction_vs_bf16", reduction(u.chosen, u.bf16)},
          {"reduction_vs_fp32", reduction(u.chosen, u.fp32)},
          {"latency_table",
           {{"source", o.latency.source},
            {"measured", o.latency.measured},
            {"label", label},
            {"chosen_ms", opt_json(t.chosen)},
            {"fp16_ms", opt_json(t.fp16)},
            {"bf16_ms", opt_json(t.bf16)},
            {"fp32_ms", opt_json(t.fp32)},
            {"int8_ms", opt_json(t.int8)},
            {"int4_ms", opt_json(t.int4)}}},
          {"end_to_end",
           {{"available", o.end_to_end_available},
            {"chosen_ms", opt_json(o.end_to_end.chosen)},
            {"fp16_ms", opt_json(o.end_to_end.fp16)},
            {"bf16_ms", opt_json(o.end_to_end.bf16)},
            {"fp32_ms", opt_json(o.end_to_end.fp32)},
            {"int8_ms", opt_json(o.end_to_end.int8)},
            {"int4_ms", opt_json(o.end_to_end.int4)},
            {"chosen_vs_int8",
             o.end_to_end.chosen && o.end_to_end.int8 ? json(*o.end_to_end.chosen / *o.end_to_end.int8) : json()}}}};
}

}  // namespace

json summary_json(const SearchOutcome& o, const std::string& config_path, const std::string& report_dir) {
  const SearchRequest& r = o.request;
  const SearchResult& chosen = o.runs.front().bisection;
  const size_t n = o.layers.size();
  const double int8_bytes = o.bytes(std::vector<Precision>(n, Precision::int8));
  json test = json::object();
  for (const auto& [k, v] : o.test) test[k] = v;
  json phases = json::object();
  for (const auto& [k, v] : o.phases) phases[k] = v;
  json s = {{"model", o.model},
            {"weights", r.weights},
            {"data", r.data},
            {"metric_name", o.metric_label},
            {"metric_unit", "percent"},
            {"reference", precision_name(r.reference)},
            {"range",
             {{"max_drop", opt_json(r.range.max_drop)},
              {"min_relative", opt_json(r.range.min_relative)},
              {"threshold_search", r.range.threshold(chosen.reference)},
              {"threshold_test", r.range.threshold(o.baseline_test)}}},
            {"baseline_metric", o.baseline_test},
            {"metric", o.metric_test},
            {"within_range", o.within_range},
            {"test", test},
            {"confidence", r.confidence},
            {"start", precision_name(r.start)},
            // chosen: the estimate; chosen_bound / the start precision: what the bisection compared with the range (the
            // estimate itself at confidence 0.5)
            {"search_split",
             {{"reference", chosen.reference},
              {precision_name(r.start), chosen.baseline},
              {"chosen", o.chosen_search_metric},
              {"chosen_bound", chosen.final_metric}}},
            {"k8", chosen.k8},
            {"k4", chosen.k4},
            {"objective", enum_name(kObjectiveNames, r.objective)},
            {"order_score", r.order_per_byte ? "per_byte" : "sensitivity"},
            {"fill", r.fill},
            {"latency_tolerance", r.latency_tolerance},
            {"weight_rounding", enum_name(kWeightRoundingNames, r.rounding)},
            {"int4_group", r.int4_group},
            {"weight_bytes", chosen.weight_bytes},
            {"int8_weight_bytes", int8_bytes},
            {"fp16_weight_bytes", o.bytes(std::vector<Precision>(n, Precision::fp16))},
            {"fp32_weight_bytes", o.bytes(std::vector<Precision>(n, Precision::fp32))},
            {"int4_weight_bytes", o.bytes(std::vector<Precision>(n, Precision::int4))},
            {"bytes_vs_int8", chosen.weight_bytes / int8_bytes},
            {"max_bytes", opt_json(r.max_bytes)},
            {"evaluations", chosen.evaluations},
            {"evaluations_fresh", o.evaluations_fresh},
            {"eval_engine", enum_name(kProbeEngineNames, r.engine)},
            {"cached_configurations", o.cached_configurations},
            {"splits",
             {{"calib", o.calib_samples},
              {"search", o.search_samples},
              {"test", o.test_samples},
              {"seed", r.seed},
              {"note", o.split_note}}},
            {"searches", searches_json(o)},
            {"pareto",
             {{"points", o.pareto.points.size()},
              {"grid_points", r.pareto_points},
              {"areas", areas_json(o)},
              {"sweeps", sweeps_json(o)}}},
            {"phases_seconds", phases},
            {"config", config_path},
            {"report", report_dir},
            {"warnings", o.warnings},
            {"threads", o.threads},
            {"seconds", o.seconds}};
  s.update(latency_json(o));
  s.update(analysis_json(o));
  return s;
}

void write_search_outputs(const SearchOutcome& o, const std::string& config_path, const std::string& report_dir) {
  QuantConfig qc;
  qc.model = o.model;
  qc.weights = weights_identity(o.request.weights);
  qc.layers = o.chosen;
  save_config(config_path, qc, o.layers);

  create_output_dir(report_dir);
  auto file = [&](const char* name) { return report_dir + "/" + name; };
  write_file_atomic(file("report.json"), summary_json(o, config_path, report_dir).dump(1) + "\n");
  write_file_atomic(file("pareto.csv"), pareto_csv(o.pareto.points));
  std::string probes = "ordering,stage,k,metric,ok\n";
  for (const OrderingRun& r : o.runs)
    for (const Probe& p : r.bisection.probes)
      probes += fmt::format("{},{},{},{},{}\n", order_name(r.kind), p.stage, p.k, json(p.metric).dump(), p.ok);
  write_file_atomic(file("probes.csv"), probes);
  if (!o.latency_profile.is_null()) write_file_atomic(file("latency.json"), o.latency_profile.dump(1) + "\n");
  const SearchHtml html = search_html(o);
  write_file_atomic(file("pareto.svg"), html.svg_full);
  write_file_atomic(file("pareto_zoom.svg"), html.svg_zoom);
  write_file_atomic(file("pareto_bytes.svg"), html.svg_bytes);
  write_file_atomic(file("pareto_bytes_zoom.svg"), html.svg_bytes_zoom);
  write_file_atomic(file("precisions.svg"), html.svg_precisions);
  write_file_atomic(file("sensitivity.svg"), html.svg_sensitivity);
  write_file_atomic(file("report.html"), html.html);
}

}  // namespace mpq::quant
