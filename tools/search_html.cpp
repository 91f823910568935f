#include "tools/search_html.h"

#include <fmt/format.h>

#include <algorithm>

namespace mpq::cli {

using nlohmann::json;
using namespace mpq::quant;

namespace {

std::string num(const json& v, const char* f = "{:.2f}") {
  return v.is_number() ? fmt::format(fmt::runtime(f), v.get<double>()) : std::string("n/a");
}
std::string pct_change(const json& reduction) {
  return reduction.is_number() ? fmt::format("{:+.1f} %", -100 * reduction.get<double>()) : std::string("n/a");
}
std::string str(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "n/a";
  return v.dump();
}

}  // namespace

SearchHtml search_html(const json& s, const std::vector<ParetoPoint>& pts,
                       const std::vector<models::QuantLayer>& layers, const Assignment& chosen,
                       const LatencyTable& lat) {
  SearchHtml out;
  const std::string metric = s["metric_name"].get<std::string>(), model = s["model"].get<std::string>();
  const bool measured = s["latency_table"]["measured"].get<bool>();
  const std::string lat_word = measured ? "measured per-layer latency" : "latency ESTIMATE (MAC-based, not measured)";
  PlotOptions po;
  po.title = fmt::format("{}: {} (search split) vs {}", model, metric, lat_word);
  po.x_label = measured ? "latency (ms, sum of measured per-layer times)" : "latency ESTIMATE (ms, MAC-based)";
  po.y_label = metric + " (%)";
  po.id = "full";
  out.svg_full = pareto_svg(pts, po);
  const double ref = s["search_split"]["reference"].get<double>();
  const double thr = s["range"]["threshold_search"].get<double>();
  po.id = "zoom";
  po.y_min = ref - std::max(2.0, 3 * (ref - thr));
  po.title += " (zoom)";
  out.svg_zoom = pareto_svg(pts, po);

  HtmlReport r;
  r.title = fmt::format("mpq search: {} ({})", model, s["weights"].get<std::string>());
  const json& range = s["range"];
  const std::string range_text =
      range["max_drop"].is_number()
          ? fmt::format("{} >= reference - {} points", metric, range["max_drop"].get<double>())
          : fmt::format("{} >= reference x {}", metric, range["min_relative"].get<double>());
  r.paragraphs.push_back(fmt::format(
      "Chosen configuration (ordering '{}', {} layers to int8 then {} of them to int4): {} {} % on the test split "
      "against {} % for the {} reference (range: {}; {}). Latency {} ms, {} vs fp16, {} vs bf16, {} vs fp32 ({}).",
      s["searches"][0]["ordering"].get<std::string>(), s["k8"].get<int>(), s["k4"].get<int>(), metric, num(s["metric"]),
      num(s["baseline_metric"]), s["reference"].get<std::string>(), range_text,
      s["within_range"].get<bool>() ? "inside the range on the test split" : "OUTSIDE the range on the test split",
      num(s["latency_ms"], "{:.3f}"), pct_change(s["reduction_vs_fp16"]), pct_change(s["reduction_vs_bf16"]),
      pct_change(s["reduction_vs_fp32"]), s["latency_source"].get<std::string>()));
  r.paragraphs.push_back(
      s["end_to_end"]["available"].get<bool>()
          ? "End-to-end latency was measured with the native executor for the chosen, fp16, bf16 and fp32 "
            "configurations (figures above)."
          : "End-to-end latency: not measured (no end-to-end measurer wired into the search); the figures are sums "
            "over the "
            "per-layer table, whose source is: " +
                s["latency_table"]["source"].get<std::string>() + ".");
  r.paragraphs.push_back("Splits: " + s["splits"]["note"].get<std::string>() +
                         fmt::format(" (seed {}).", s["splits"]["seed"].get<uint64_t>()));
  r.paragraphs.push_back(
      "Frontier points: for every ordering, the first k layers of its int8 order lowered from " +
      s.value("start", std::string("fp16")) +
      " to int8 (stage "
      "int8), then from all-int8 the first k of its int4 order lowered to int4 (stage int4), evaluated on the search "
      "split; crosses are the uniform precisions. Lines are step frontiers F(l) = best metric among the ordering's "
      "points with latency <= l. Area between frontiers A - B = integral of F_A(l) - F_B(l) over the latency interval "
      "both cover, in metric points x ms (positive: A is better); 'mean' divides it by the interval's length.");

  r.tables.push_back({"Result",
                      {"quantity", "value"},
                      {{"reference (" + s["reference"].get<std::string>() + ") " + metric + ", test split",
                        num(s["baseline_metric"]) + " %"},
                       {"chosen " + metric + ", test split", num(s["metric"]) + " %"},
                       {"latency chosen", num(s["latency_ms"], "{:.3f}") + " ms"},
                       {"latency fp16 / bf16 / fp32", num(s["fp16_latency_ms"], "{:.3f}") + " / " +
                                                          num(s["bf16_latency_ms"], "{:.3f}") + " / " +
                                                          num(s["fp32_latency_ms"], "{:.3f}") + " ms"},
                       {"latency source", s["latency_source"].get<std::string>()},
                       {"weight bytes chosen / fp16", fmt::format("{:.0f} / {:.0f}", s["weight_bytes"].get<double>(),
                                                                  s["fp16_weight_bytes"].get<double>())},
                       {"bisection evaluations", str(s["evaluations"])},
                       {"wall time", num(s["seconds"], "{:.1f}") + " s"}}});
  HtmlTable tt{"Test split by precision", {"configuration", metric + " (%)", "latency (ms, table)"}, {}};
  for (const char* p : {"fp32", "fp16", "bf16", "int8", "int4"})
    tt.rows.push_back(
        {std::string("uniform ") + p, num(s["test"][p]), num(s["latency_table"][std::string(p) + "_ms"], "{:.3f}")});
  tt.rows.push_back({"chosen", num(s["test"]["chosen"]), num(s["latency_table"]["chosen_ms"], "{:.3f}")});
  r.tables.push_back(tt);
  HtmlTable ot{"Bisection per ordering (search split)",
               {"ordering", "k8", "k4", metric + " (%)", "latency (ms)", "weight bytes", "evaluations", "warnings"},
               {}};
  for (const json& x : s["searches"])
    ot.rows.push_back({x["ordering"].get<std::string>(), str(x["k8"]), str(x["k4"]), num(x["final_metric"]),
                       num(x["latency_ms"], "{:.3f}"), fmt::format("{:.0f}", x["weight_bytes"].get<double>()),
                       str(x["evaluations"]), std::to_string(x["warnings"].size())});
  r.tables.push_back(ot);
  HtmlTable st{"Sweeps: largest k inside the range on the k grid (best) and before the first miss (prefix)",
               {"ordering", "int8 best k", "int8 prefix k", "int4 best k", "int4 prefix k"},
               {}};
  for (const json& x : s["pareto"]["sweeps"])
    st.rows.push_back({x["ordering"].get<std::string>(), str(x["int8_best_k"]), str(x["int8_prefix_k"]),
                       str(x["int4_best_k"]), str(x["int4_prefix_k"])});
  if (!st.rows.empty()) r.tables.push_back(st);
  HtmlTable at{
      "Area between step frontiers (search split)",
      {"A", "B", "latency interval (ms)", "area A - B (points x ms)", "A above B", "B above A", "mean (points)"},
      {}};
  for (const json& a : s["pareto"]["areas"])
    at.rows.push_back({a["a"].get<std::string>(), a["b"].get<std::string>(),
                       a["empty"].get<bool>()
                           ? "none in common"
                           : fmt::format("[{:.4g}, {:.4g}]", a["lo_ms"].get<double>(), a["hi_ms"].get<double>()),
                       num(a["area"], "{:.4g}"), num(a["positive"], "{:.4g}"), num(a["negative"], "{:.4g}"),
                       num(a["mean_diff"], "{:+.3f}")});
  if (!at.rows.empty()) r.tables.push_back(at);
  HtmlTable set{"Settings", {"setting", "value"}, {}};
  set.rows.push_back({"model / weights", model + " / " + s["weights"].get<std::string>()});
  set.rows.push_back({"data", s["data"].get<std::string>()});
  set.rows.push_back({"range", range_text + " (reference " + s["reference"].get<std::string>() + ")"});
  set.rows.push_back({"max bytes", str(s["max_bytes"])});
  set.rows.push_back(
      {"splits (calib / search / test)",
       fmt::format("{} / {} / {}", str(s["splits"]["calib"]), str(s["splits"]["search"]), str(s["splits"]["test"]))});
  set.rows.push_back({"Hutchinson", fmt::format("{} draws ({}), {} samples, loss {}", str(s["hutchinson"]["draws"]),
                                                s["hutchinson"]["converged"].get<bool>() ? "converged" : "cap",
                                                str(s["hutchinson"]["samples"]), str(s["hutchinson"]["loss"]))});
  set.rows.push_back(
      {"dependencies",
       fmt::format("int8 {} pairs / {} evaluations, int4 {} pairs / {} evaluations, {} "
                   "samples, window {}",
                   str(s["dependencies"]["int8"]["pairs"]), str(s["dependencies"]["int8"]["evaluations"]),
                   str(s["dependencies"]["int4"]["pairs"]), str(s["dependencies"]["int4"]["evaluations"]),
                   str(s["dependencies"]["samples"]), str(s["dependencies"]["window"]))});
  set.rows.push_back({"latency table", s["latency_table"]["source"].get<std::string>()});
  set.rows.push_back({"threads", str(s["threads"])});
  r.tables.push_back(set);
  HtmlTable ct{
      "Chosen configuration", {"layer", "precision", "weight group", "input scale / zero point", "ms (table)"}, {}};
  for (const auto& l : layers) {
    const LayerQuant& q = chosen.at(l.name);
    std::string ins;
    for (const auto& [op, p] : q.act)
      ins += fmt::format("{}{}: {:.4g} / {}", ins.empty() ? "" : ", ", op, p.scale, p.zero_point);
    auto it = lat.ms.find(l.name);
    const std::string ms = it != lat.ms.end() && it->second.count(q.precision)
                               ? fmt::format("{:.4f}", it->second.at(q.precision))
                               : std::string("n/a");
    ct.rows.push_back({l.name, precision_name(q.precision),
                       q.precision == Precision::int4 ? std::to_string(q.weight_group) : "", ins, ms});
  }
  r.tables.push_back(ct);
  r.svgs = {out.svg_full, out.svg_zoom};
  for (const json& w : s["warnings"]) r.warnings.push_back(w.get<std::string>());
  out.html = render_html(r);
  return out;
}

}  // namespace mpq::cli
