// The HTML summary and the two SVG plots of a search (quant/report.h does the generic rendering; this file
// decides what the page says), from the typed outcome.
#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "quant/pipeline_report.h"

namespace mpq::quant {

namespace {

std::string num(const std::optional<double>& v, const char* f = "{:.2f}") {
  return v ? fmt::format(fmt::runtime(f), *v) : std::string("n/a");
}
std::string num(double v, const char* f = "{:.2f}") { return fmt::format(fmt::runtime(f), v); }
std::string pct_change(const std::optional<double>& chosen, const std::optional<double>& base) {
  return chosen && base ? fmt::format("{:+.1f} %", -100 * (1 - *chosen / *base)) : std::string("n/a");
}

std::string range_text(const SearchOutcome& o) {
  const AccuracyRange& r = o.request.range;
  return r.max_drop ? fmt::format("{} >= reference - {} points", o.metric_label, *r.max_drop)
                    : fmt::format("{} >= reference x {}", o.metric_label, *r.min_relative);
}

void add_paragraphs(const SearchOutcome& o, HtmlReport& r) {
  const SearchResult& b = o.runs.front().bisection;
  const LatencyFigures& u = o.compared();
  r.paragraphs.push_back(fmt::format(
      "Chosen configuration (ordering '{}', {} layers to int8 then {} of them to int4): {} {} % on the test split "
      "against {} % for the {} reference (range: {}; {}). Latency {} ms, {} vs fp16, {} vs bf16, {} vs fp32 ({}).",
      order_name(o.runs.front().kind), b.k8, b.k4, o.metric_label, num(o.metric_test), num(o.baseline_test),
      precision_name(o.request.reference), range_text(o),
      o.within_range ? "inside the range on the test split" : "OUTSIDE the range on the test split",
      num(u.chosen, "{:.3f}"), pct_change(u.chosen, u.fp16), pct_change(u.chosen, u.bf16), pct_change(u.chosen, u.fp32),
      o.latency_source));
  r.paragraphs.push_back(
      o.end_to_end_available
          ? "End-to-end latency was measured with the native engine for the chosen, fp16, bf16 and fp32 "
            "configurations (figures above)."
          : "End-to-end latency: not measured; the figures are sums over the per-layer table, whose source is: " +
                o.latency.source + ".");
  r.paragraphs.push_back("Splits: " + o.split_note + fmt::format(" (seed {}).", o.request.seed));
  r.paragraphs.push_back(
      "Frontier points: for every ordering, the first k layers of its int8 order lowered from " +
      std::string(precision_name(o.request.start)) +
      " to int8 (stage int8), then from all-int8 the first k of its int4 order lowered to int4 (stage int4), "
      "evaluated on the search split; crosses are the uniform precisions. Lines are step frontiers F(l) = best "
      "metric among the ordering's points with latency <= l. Area between frontiers A - B = integral of F_A(l) - "
      "F_B(l) over the latency interval both cover, in metric points x ms (positive: A is better); 'mean' divides it "
      "by the interval's length.");
}

HtmlTable result_table(const SearchOutcome& o) {
  const SearchResult& b = o.runs.front().bisection;
  const LatencyFigures& u = o.compared();
  return {"Result",
          {"quantity", "value"},
          {{"reference (" + std::string(precision_name(o.request.reference)) + ") " + o.metric_label + ", test split",
            num(o.baseline_test) + " %"},
           {"chosen " + o.metric_label + ", test split", num(o.metric_test) + " %"},
           {"latency chosen", num(u.chosen, "{:.3f}") + " ms"},
           {"latency fp16 / bf16 / fp32",
            num(u.fp16, "{:.3f}") + " / " + num(u.bf16, "{:.3f}") + " / " + num(u.fp32, "{:.3f}") + " ms"},
           {"latency all-int8 / all-int4", num(u.int8, "{:.3f}") + " / " + num(u.int4, "{:.3f}") + " ms"},
           {"latency source", o.latency_source},
           {"weight rounding", std::string(enum_name(kWeightRoundingNames, o.request.rounding)) +
                                   (o.request.int4_group ? fmt::format(", int4 group {}", o.request.int4_group)
                                                         : std::string(", int4 per output channel"))},
           {"stored bytes chosen / all-int8 / all-fp16",
            fmt::format("{:.0f} / {:.0f} / {:.0f} ({:.3f}x int8)", b.weight_bytes,
                        o.bytes(std::vector<Precision>(o.layers.size(), Precision::int8)),
                        o.bytes(std::vector<Precision>(o.layers.size(), Precision::fp16)),
                        b.weight_bytes / o.bytes(std::vector<Precision>(o.layers.size(), Precision::int8)))},
           {"bisection evaluations", std::to_string(b.evaluations)},
           {"wall time", num(o.seconds, "{:.1f}") + " s"}}};
}

void add_search_tables(const SearchOutcome& o, HtmlReport& r) {
  HtmlTable tt{"Test split by precision", {"configuration", o.metric_label + " (%)", "latency (ms, table)"}, {}};
  const LatencyFigures& t = o.table;
  const std::pair<const char*, std::optional<double>> rows[] = {
      {"fp32", t.fp32}, {"fp16", t.fp16}, {"bf16", t.bf16}, {"int8", t.int8}, {"int4", t.int4}};
  for (const auto& [p, ms] : rows)
    tt.rows.push_back({std::string("uniform ") + p, num(o.test.at(p)), num(ms, "{:.3f}")});
  tt.rows.push_back({"chosen", num(o.test.at("chosen")), num(t.chosen, "{:.3f}")});
  r.tables.push_back(tt);
  HtmlTable ot{
      "Bisection per ordering (search split)",
      {"ordering", "k8", "k4", o.metric_label + " (%)", "latency (ms)", "weight bytes", "evaluations", "warnings"},
      {}};
  for (const OrderingRun& x : o.runs) {
    const SearchResult& b = x.bisection;
    ot.rows.push_back({order_name(x.kind), std::to_string(b.k8), std::to_string(b.k4), num(b.final_metric),
                       num(b.latency_ms, "{:.3f}"), fmt::format("{:.0f}", b.weight_bytes),
                       std::to_string(b.evaluations), std::to_string(b.warnings.size())});
  }
  r.tables.push_back(ot);
  HtmlTable st{"Sweeps: largest k inside the range on the k grid (best) and before the first miss (prefix)",
               {"ordering", "int8 best k", "int8 prefix k", "int4 best k", "int4 prefix k"},
               {}};
  for (const OrderingFrontier& f : o.pareto.sweeps)
    st.rows.push_back({f.name, std::to_string(f.int8.best_k), std::to_string(f.int8.prefix_k),
                       std::to_string(f.int4.best_k), std::to_string(f.int4.prefix_k)});
  if (!st.rows.empty()) r.tables.push_back(st);
  HtmlTable at{"Area between step frontiers (search split), in the latency and the bytes space",
               {"space", "A", "B", "x interval", "area A - B", "A above B", "B above A", "mean (points)"},
               {}};
  for (const AreaRow& a : o.areas) {
    const char* u = space_unit(a.area.space);
    at.rows.push_back(
        {enum_name(kSpaceNames, a.area.space), a.a, a.b,
         a.area.empty ? "none in common" : fmt::format("[{:.4g}, {:.4g}] {}", a.area.lo_ms, a.area.hi_ms, u),
         fmt::format("{:.4g} points x {}", a.area.area, u), num(a.area.positive, "{:.4g}"),
         num(a.area.negative, "{:.4g}"), num(a.area.mean_diff, "{:+.3f}")});
  }
  if (!at.rows.empty()) r.tables.push_back(at);
}

HtmlTable settings_table(const SearchOutcome& o) {
  const SearchRequest& q = o.request;
  HtmlTable set{"Settings", {"setting", "value"}, {}};
  set.rows.push_back({"model / weights", o.model + " / " + q.weights});
  set.rows.push_back({"data", q.data});
  set.rows.push_back({"range", range_text(o) + " (reference " + precision_name(q.reference) + ")"});
  set.rows.push_back({"max bytes", q.max_bytes ? fmt::format("{:.0f}", *q.max_bytes) : "n/a"});
  set.rows.push_back({"splits (calib / search / test)",
                      fmt::format("{} / {} / {}", o.calib_samples, o.search_samples, o.test_samples)});
  set.rows.push_back({"Hutchinson", fmt::format("{} draws ({}), {} samples, loss {}", o.traces.draws,
                                                o.traces.converged ? "converged" : "cap", o.hessian_samples,
                                                enum_name(kHessianLossNames, o.hessian_loss))});
  auto dep = [&](Precision p) {
    auto it = o.dependencies.find(p);
    return it == o.dependencies.end()
               ? std::string("n/a")
               : fmt::format("{} pairs / {} evaluations", it->second.pairs.size(), it->second.evaluations);
  };
  set.rows.push_back({"dependencies", fmt::format("int8 {}, int4 {}, {} samples, window {}", dep(Precision::int8),
                                                  dep(Precision::int4), o.hessian_samples, q.window)});
  set.rows.push_back({"latency table", o.latency.source});
  set.rows.push_back({"threads", std::to_string(o.threads)});
  return set;
}

HtmlTable chosen_table(const SearchOutcome& o) {
  HtmlTable ct{
      "Chosen configuration", {"layer", "precision", "weight group", "input scale / zero point", "ms (table)"}, {}};
  for (const auto& l : o.layers) {
    const LayerQuant& q = o.chosen.at(l.name);
    std::string ins;
    for (const auto& [op, p] : q.act)
      ins += fmt::format("{}{}: {:.4g} / {}", ins.empty() ? "" : ", ", op, p.scale, p.zero_point);
    auto it = o.latency.ms.find(l.name);
    const std::string ms = it != o.latency.ms.end() && it->second.count(q.precision)
                               ? fmt::format("{:.4f}", it->second.at(q.precision))
                               : std::string("n/a");
    ct.rows.push_back({l.name, precision_name(q.precision),
                       q.precision == Precision::int4 ? std::to_string(q.weight_group) : "", ins, ms});
  }
  return ct;
}

}  // namespace

namespace {

// The four Pareto plots: latency and bytes spaces, each in full and zoomed near the reference.
void add_plots(const SearchOutcome& o, SearchHtml& out) {
  const bool measured = o.latency.measured;
  const SearchResult& b = o.runs.front().bisection;
  const double ref = b.reference, thr = o.request.range.threshold(ref);
  PlotOptions po;
  po.threshold = thr;
  po.chosen = ParetoPoint{"chosen", "chosen", 0, o.chosen_search_metric, b.latency_ms.value_or(0), b.weight_bytes, ""};
  po.y_label = o.metric_label + " (%)";
  auto plot = [&](Space sp, bool zoom, const std::string& id) {
    po.space = sp;
    po.id = id;
    po.x_label = sp == Space::bytes ? "stored bytes (MB: weights, scales, biases, tables)"
                 : measured         ? "latency (ms, sum of measured per-layer times)"
                                    : "latency ESTIMATE (ms, MAC-based)";
    po.title = fmt::format("{}: {} (search split) vs {}{}", o.model, o.metric_label,
                           sp == Space::bytes ? "stored bytes"
                           : measured         ? "measured per-layer latency"
                                              : "latency ESTIMATE (MAC-based, not measured)",
                           zoom ? " (zoom)" : "");
    po.y_min = zoom ? ref - std::max(2.0, 3 * (ref - thr)) : std::numeric_limits<double>::quiet_NaN();
    return pareto_svg(o.pareto.points, po);
  };
  out.svg_full = plot(Space::latency, false, "lat");
  out.svg_zoom = plot(Space::latency, true, "latz");
  out.svg_bytes = plot(Space::bytes, false, "bytes");
  out.svg_bytes_zoom = plot(Space::bytes, true, "bytesz");
}

void add_layer_charts(const SearchOutcome& o, SearchHtml& out) {
  std::vector<std::string> names;
  for (const auto& l : o.layers) names.push_back(l.name);
  out.svg_precisions = precision_map_svg(names, o.chosen_precisions, "Chosen precision per layer (layer order)");
  auto it = o.scores.find(Precision::int4);
  if (it == o.scores.end()) return;
  const LayerScores& sc = it->second;
  std::vector<double> hess(sc.omega.size());  // [N] the Hessian term in loss units
  for (size_t i = 0; i < hess.size(); ++i) hess[i] = sc.scale * sc.omega[i];
  out.svg_sensitivity = sensitivity_svg(names,
                                        {{"Hessian term a*Omega_i (int4)", hess},
                                         {"single effect dL_i (int4)", sc.single},
                                         {"dependency sum 1/2 sum_j I_ij (int4)", sc.half_interaction}},
                                        "Per-layer sensitivity at int4 (loss units; the augmented score is the sum)");
}

}  // namespace

SearchHtml search_html(const SearchOutcome& o) {
  SearchHtml out;
  add_plots(o, out);
  add_layer_charts(o, out);
  HtmlReport r;
  r.title = fmt::format("mpq search: {} ({})", o.model, o.request.weights);
  add_paragraphs(o, r);
  r.tables.push_back(result_table(o));
  add_search_tables(o, r);
  r.tables.push_back(settings_table(o));
  r.tables.push_back(chosen_table(o));
  r.svgs = {out.svg_full, out.svg_zoom, out.svg_bytes, out.svg_bytes_zoom, out.svg_precisions, out.svg_sensitivity};
  r.warnings = o.warnings;
  out.html = render_html(r);
  return out;
}

}  // namespace mpq::quant
