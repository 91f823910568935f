// The Pareto report: k grids, ordering sweeps on a hand-made additive task, step frontiers, the area between
// two frontiers (hand-computed, exact), nice ticks, CSV, SVG and HTML output.
#include <doctest/doctest.h>

#include <limits>

#include <algorithm>
#include <string>

#include "core/error.h"
#include "quant/report.h"

using namespace mpq;
using namespace mpq::quant;

namespace {
ParetoPoint pt(const std::string& ordering, double latency, double metric) {
  return {ordering, "int8", 0, metric, latency, 0, "ESTIMATE"};
}
size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("report: step frontier keeps the best metric within each latency") {
  const std::vector<ParetoPoint> a = {pt("a", 4, 80), pt("a", 1, 50), pt("a", 2, 70), pt("a", 3, 60), pt("a", 2, 65)};
  const auto f = step_frontier(a);
  // (3, 60) is slower and worse than (2, 70): F stays 70 there
  CHECK(f == std::vector<std::pair<double, double>>{{1, 50}, {2, 70}, {3, 70}, {4, 80}});
}

TEST_CASE("report: area between two step frontiers, hand-computed") {
  // F_A: [1,2) 50, [2,4) 70, 4: 80.  F_B: [1,3) 40, [3,4) 75, 4: 80.
  // F_A - F_B: [1,2) +10, [2,3) +30, [3,4) -5  ->  area 35, positive 40, negative 5, mean 35/3
  const std::vector<ParetoPoint> a = {pt("a", 1, 50), pt("a", 2, 70), pt("a", 4, 80)};
  const std::vector<ParetoPoint> b = {pt("b", 1, 40), pt("b", 3, 75), pt("b", 4, 80)};
  const FrontierArea r = frontier_area(a, b);
  CHECK(!r.empty);
  CHECK(r.lo_ms == 1);
  CHECK(r.hi_ms == 4);
  CHECK(r.area == 35);
  CHECK(r.positive == 40);
  CHECK(r.negative == 5);
  CHECK(r.mean_diff == doctest::Approx(35.0 / 3.0).epsilon(1e-15));
  const FrontierArea back = frontier_area(b, a);  // antisymmetric
  CHECK(back.area == -35);
  CHECK(back.positive == 5);
  CHECK(back.negative == 40);

  // different spans: the common interval is [2, 4]; F_A = 50 there, F_B = 60 on [2, 4)
  const FrontierArea c = frontier_area({pt("a", 1, 50), pt("a", 5, 90)}, {pt("b", 2, 60), pt("b", 4, 70)});
  CHECK(c.lo_ms == 2);
  CHECK(c.hi_ms == 4);
  CHECK(c.area == -20);
  CHECK(c.negative == 20);
  CHECK(c.positive == 0);
  CHECK(c.mean_diff == -10);
  // fractional latencies: [0.5, 1.25) diff 2.5 - 1 = 1.5 (x 0.75), [1.25, 2) 2.5 - 3 = -0.5 (x 0.75)
  const FrontierArea d =
      frontier_area({pt("a", 0.5, 2.5), pt("a", 2, 2.5)}, {pt("b", 0.5, 1), pt("b", 1.25, 3), pt("b", 2, 3)});
  CHECK(d.area == doctest::Approx(0.75 * 1.5 - 0.75 * 0.5).epsilon(1e-15));
  CHECK(d.positive == doctest::Approx(1.125).epsilon(1e-15));
  CHECK(d.negative == doctest::Approx(0.375).epsilon(1e-15));
  // no common interval
  const FrontierArea e = frontier_area({pt("a", 1, 50)}, {pt("b", 2, 60), pt("b", 3, 70)});
  CHECK(e.empty);
  CHECK(e.area == 0);
  CHECK(frontier_area({}, {pt("b", 2, 60)}).empty);
}

TEST_CASE("report: k grid") {
  CHECK(k_grid(53, 9) == std::vector<int>{0, 7, 13, 20, 27, 33, 40, 46, 53});
  CHECK(k_grid(5, 2) == std::vector<int>{0, 5});
  CHECK(k_grid(3, 9) == std::vector<int>{0, 1, 2, 3});
  CHECK(k_grid(4, 0) == std::vector<int>{0, 1, 2, 3, 4});
  CHECK(k_grid(0, 5) == std::vector<int>{0});
  CHECK_THROWS_WITH_AS(k_grid(10, 1), doctest::Contains("1 points"), Error);
}

TEST_CASE("report: ordering sweeps on an additive task give the hand-computed points") {
  // 3 layers. Metric (percent) = 90 - sum of per-layer costs: int8 {1, 2, 4}, int4 {10, 20, 40}.
  // Latency (ms) per layer: fp16 {3, 3, 3}, int8 {2, 2, 1}, int4 {1, 2, 1}. Weights: 100 each.
  const double c8[] = {1, 2, 4}, c4[] = {10, 20, 40}, l16[] = {3, 3, 3}, l8[] = {2, 2, 1}, l4[] = {1, 2, 1};
  int calls = 0;
  const ConfigMetric metric = [&](const std::vector<Precision>& p) {
    ++calls;
    double m = 90;
    for (size_t i = 0; i < 3; ++i) m -= p[i] == Precision::int8 ? c8[i] : p[i] == Precision::int4 ? c4[i] : 0;
    return m;
  };
  const ConfigValue lat = [&](const std::vector<Precision>& p) {
    double l = 0;
    for (size_t i = 0; i < 3; ++i) l += p[i] == Precision::int8 ? l8[i] : p[i] == Precision::int4 ? l4[i] : l16[i];
    return l;
  };
  const ConfigValue bytes = [](const std::vector<Precision>& p) { return weight_bytes({100, 100, 100}, p); };
  AccuracyRange range;
  range.max_drop = 3.5;
  const ParetoSweeps s = ordering_points(3, {{"good", {0, 1, 2}, {0, 1, 2}}, {"bad", {2, 1, 0}, {2, 1, 0}}}, 0, metric,
                                         lat, bytes, "ESTIMATE", range);
  REQUIRE(s.points.size() == 16);  // 2 orderings x 2 stages x k = 0..3
  CHECK(calls == 16);
  // good, int8: k = 0..3 -> metric 90, 89, 87, 83; latency 9, 8, 7, 5; bytes 600, 500, 400, 300
  const double m8[] = {90, 89, 87, 83}, t8[] = {9, 8, 7, 5}, b8[] = {600, 500, 400, 300};
  for (int k = 0; k < 4; ++k) {
    const ParetoPoint& p = s.points[size_t(k)];
    CHECK(p.ordering == "good");
    CHECK(p.stage == "int8");
    CHECK(p.k == k);
    CHECK(p.metric == m8[k]);
    CHECK(p.latency_ms == t8[k]);
    CHECK(p.weight_bytes == b8[k]);
    CHECK(p.latency_source == "ESTIMATE");
  }
  // good, int4 from all-int8 (83, 5 ms): k = 1: 90 - 10 - 2 - 4 = 74, 1 + 2 + 1 = 4 ms; k = 3: 20, 4 ms, 150 B
  CHECK(s.points[4].metric == 83);
  CHECK(s.points[5].metric == 74);
  CHECK(s.points[5].latency_ms == 4);
  CHECK(s.points[7].metric == 20);
  CHECK(s.points[7].weight_bytes == 150);
  // bad, int8: lowers layer 2 first: 86 at 7 ms
  CHECK(s.points[9].metric == 86);
  CHECK(s.points[9].latency_ms == 7);
  // sweep results against the range (drop <= 3.5): good int8 best k 2 (87), bad int8 best k 0
  REQUIRE(s.sweeps.size() == 2);
  CHECK(s.sweeps[0].int8.best_k == 2);
  CHECK(s.sweeps[0].int8.prefix_k == 2);
  CHECK(s.sweeps[1].int8.best_k == 0);
  CHECK(s.sweeps[0].int4.best_k == 0);
  // good dominates bad: frontiers on [4, 9]
  //   good: 4 -> 74, 5 -> 83, 7 -> 87, 8 -> 89, 9 -> 90;  bad int8: 9 90, 7 86, 6 84, 5 83; bad int4 (from 83):
  //   k1 = 90-1-2-40 = 47 @ 5, k2 = 90-1-20-40 = 29 @ 5, k3 = 20 @ 4 -> bad: 4 -> 20, 5 -> 83, 6 -> 84, 7 -> 86, 9 ->
  //   90 diff: [4,5) 54, [5,6) 0, [6,7) -1 ... no: good at [6,7) is 83 (its 7 ms point starts at 7) -> 83 - 84 = -1,
  //   [7,8) 87 - 86 = 1, [8,9) 89 - 86 = 3  ->  area 54 - 1 + 1 + 3 = 57, positive 58, negative 1
  const FrontierArea a = frontier_area(points_of(s.points, "good"), points_of(s.points, "bad"));
  CHECK(a.lo_ms == 4);
  CHECK(a.hi_ms == 9);
  CHECK(a.area == 57);
  CHECK(a.positive == 58);
  CHECK(a.negative == 1);
  // against a reference of 91 (threshold 87.5) the good int8 sweep stays inside up to k = 1 only
  const ParetoSweeps r91 =
      ordering_points(3, {{"good", {0, 1, 2}, {0, 1, 2}}}, 0, metric, lat, bytes, "m", range, 91.0);
  CHECK(r91.sweeps[0].int8.best_k == 1);
  CHECK(r91.sweeps[0].int8.prefix_k == 1);
  // a 2-point grid evaluates only the end points
  const ParetoSweeps g = ordering_points(3, {{"good", {0, 1, 2}, {0, 1, 2}}}, 2, metric, lat, bytes, "m", range);
  REQUIRE(g.points.size() == 4);
  CHECK(g.points[1].k == 3);
  CHECK(g.points[1].metric == 83);
  // --start bf16: stage int8 lowers from all-bf16, so every layer not yet lowered is bf16, never fp16
  int bf16_seen = 0, fp16_seen = 0;
  const ConfigMetric seen = [&](const std::vector<Precision>& p) {
    for (Precision q : p) bf16_seen += q == Precision::bf16, fp16_seen += q == Precision::fp16;
    return metric(p);
  };
  const ParetoSweeps b16 = ordering_points(3, {{"good", {0, 1, 2}, {0, 1, 2}}}, 0, seen, lat, bytes, "m", range,
                                           std::nullopt, {}, Precision::bf16);
  CHECK(b16.points.size() == 8);
  CHECK(bf16_seen == 3 + 2 + 1);  // stage int8 at k = 0, 1, 2 (k = 3 and stage int4 have none left)
  CHECK(fp16_seen == 0);
  CHECK_THROWS_WITH_AS(ordering_points(3, {{"short", {0, 1}, {0, 1}}}, 0, metric, lat, bytes, "m", range),
                       doctest::Contains("'short' has 2 entries for 3 layers"), Error);
}

TEST_CASE("report: nice ticks") {
  CHECK(nice_ticks(0, 10) == std::vector<double>{0, 2, 4, 6, 8, 10});
  const auto t = nice_ticks(0.13, 0.91, 4);
  REQUIRE(t.size() == 4);
  CHECK(t[0] == doctest::Approx(0.2));
  CHECK(t[3] == doctest::Approx(0.8));
  const auto z = nice_ticks(-0.3, 0.3, 6);
  REQUIRE(z.size() == 7);
  CHECK(z[3] == 0.0);
  CHECK(!std::signbit(z[3]));
  CHECK(nice_ticks(71, 79, 6) == std::vector<double>{71, 72, 73, 74, 75, 76, 77, 78, 79});
  CHECK(nice_ticks(5, 5) == std::vector<double>{5});
}

TEST_CASE("report: CSV, SVG and HTML") {
  std::vector<ParetoPoint> pts = {{"augmented", "int8", 0, 78.5, 12.25, 3500000, "measured"},
                                  {"augmented", "int8", 53, 77, 8, 1750000, "measured"},
                                  {"hessian", "int8", 53, 76, 8.5, 1750000, "measured"},
                                  {"uniform", "int4", 53, 10, 6, 875000, "measured"}};
  CHECK(pareto_csv(pts) ==
        "ordering,stage,k,metric,latency_ms,weight_bytes,latency_source\n"
        "augmented,int8,0,78.5,12.25,3500000,measured\n"
        "augmented,int8,53,77,8,1750000,measured\n"
        "hessian,int8,53,76,8.5,1750000,measured\n"
        "uniform,int4,53,10,6,875000,measured\n");
  PlotOptions o;
  o.title = "top-1 <vs> latency";
  o.id = "full";
  const std::string svg = pareto_svg(pts, o);
  CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
  CHECK(svg.find("</svg>") == svg.size() - 7);
  CHECK(count(svg, "<polyline") == 2);         // one frontier per ordering, none for uniform
  CHECK(count(svg, "<circle") == 2 + 1 + 2);   // augmented points + legend + the two stage legend markers
  CHECK(count(svg, "<rect x=") >= 1 + 1 + 1);  // hessian point + legend + clip / frame
  CHECK(svg.find("top-1 &lt;vs&gt; latency") != std::string::npos);
  CHECK(svg.find(">augmented</text>") != std::string::npos);
  CHECK(svg.find(">hessian</text>") != std::string::npos);
  CHECK(svg.find(">int4</text>") != std::string::npos);  // the uniform point's label
  CHECK(svg.find(">latency (ms)</text>") != std::string::npos);
  CHECK(svg.find("clip-path=\"url(#full-clip)\"") != std::string::npos);
  // x range [6, 12.25] padded by 4 %: ticks 6..12 every 1 ms; y [10, 78.5] padded: every 10 points
  CHECK(svg.find(">7</text>") != std::string::npos);
  CHECK(svg.find(">12</text>") != std::string::npos);
  CHECK(svg.find(">70</text>") != std::string::npos);
  // uniform points on the same spot share one label
  std::vector<ParetoPoint> same = pts;
  same.push_back({"uniform", "fp16", 53, 78.5, 12.25, 3500000, "measured"});
  same.push_back({"uniform", "bf16", 53, 78.5, 12.25, 3500000, "measured"});
  const std::string merged = pareto_svg(same, o);
  CHECK(merged.find(">fp16/bf16</text>") != std::string::npos);
  CHECK(count(merged, "l10,10 m0,-10") == 2 + 1);  // one cross per group (int4, fp16/bf16) + legend
  // zoomed: y from 75 -> the int4 point at 10 % is below the plot (clipped), ticks in 0.5 steps
  o.y_min = 75;
  const std::string zoom = pareto_svg(pts, o);
  CHECK(zoom.find(">77.5</text>") != std::string::npos);
  o.y_min = std::numeric_limits<double>::quiet_NaN();

  // the bytes space: x = MB (0.875 .. 3.5), the chosen point ringed, the threshold dashed, int4-stage points hollow
  std::vector<ParetoPoint> staged = pts;
  staged.push_back({"augmented", "int4", 20, 70, 7, 1000000, "measured"});
  PlotOptions b;
  b.space = Space::bytes;
  b.id = "bytes";
  b.x_label = "stored bytes (MB)";
  b.threshold = 77.5;
  b.chosen = staged[1];
  const std::string bsvg = pareto_svg(staged, b);
  CHECK(bsvg.find(">3.5</text>") != std::string::npos);  // x ticks in MB
  CHECK(bsvg.find(">chosen</text>") != std::string::npos);
  CHECK(bsvg.find("r=\"9\"") != std::string::npos);
  CHECK(bsvg.find("stroke-dasharray") != std::string::npos);
  CHECK(bsvg.find(">range threshold</text>") != std::string::npos);
  CHECK(count(bsvg, "fill=\"white\" stroke=\"#d62728\"") == 1);  // the augmented int4-stage point, hollow
  CHECK(space_x(staged.back(), Space::bytes) == 1.0);
  // the area in the bytes space, by hand: A (1 MB, 70), (2 MB, 80) against B (1 MB, 75), (2 MB, 78) at equal
  // latency: over [1, 2] MB F_A = 70 and F_B = 75, so A - B = -5 points x MB; in the latency space A is ahead
  const std::vector<ParetoPoint> A = {{"a", "int4", 1, 70, 5, 1e6, ""}, {"a", "int4", 2, 80, 4, 2e6, ""}};
  const std::vector<ParetoPoint> B = {{"b", "int4", 1, 75, 5, 1e6, ""}, {"b", "int4", 2, 78, 4, 2e6, ""}};
  const FrontierArea ab = frontier_area(A, B, Space::bytes);
  CHECK(ab.space == Space::bytes);
  CHECK(!ab.empty);
  CHECK(ab.lo_ms == 1.0);
  CHECK(ab.hi_ms == 2.0);
  CHECK(ab.area == doctest::Approx(-5.0));
  CHECK(ab.negative == doctest::Approx(5.0));
  const FrontierArea al = frontier_area(A, B, Space::latency);  // over [4, 5] ms: 80 vs 78
  CHECK(al.area == doctest::Approx(2.0));

  const std::string map =
      precision_map_svg({"a", "b<c", "d"}, {Precision::int8, Precision::int4, Precision::int8}, "map");
  CHECK(count(map, "<title>") == 3);
  CHECK(map.find("<title>1 b&lt;c: int4</title>") != std::string::npos);
  CHECK(map.find(">int8 (2)</text>") != std::string::npos);
  CHECK_THROWS_AS(precision_map_svg({"a"}, {}, "bad"), Error);
  const std::string sens = sensitivity_svg({"a", "b"}, {{"s1", {1.0, -2.0}}, {"s2", {0.5, 0.0}}}, "sens");
  CHECK(count(sens, "<title>") == 4);
  CHECK(sens.find("half width = 2") != std::string::npos);
  CHECK(sens.find("<title>b: s1 -2</title>") != std::string::npos);
  CHECK_THROWS_AS(sensitivity_svg({"a"}, {{"s", {1.0, 2.0}}}, "bad"), Error);

  HtmlReport r;
  r.title = "mpq search: mobilenetv2 & co";
  r.paragraphs = {"latency is an ESTIMATE <not measured>"};
  r.tables = {{"chosen", {"layer", "precision"}, {{"features.0.0", "int8"}}}};
  r.svgs = {svg};
  r.warnings = {"stage 1: non-monotone"};
  const std::string html = render_html(r);
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(html.find("<title>mpq search: mobilenetv2 &amp; co</title>") != std::string::npos);
  CHECK(html.find("ESTIMATE &lt;not measured&gt;") != std::string::npos);
  CHECK(html.find("<td>features.0.0</td><td>int8</td>") != std::string::npos);
  CHECK(html.find(svg) != std::string::npos);  // inlined verbatim
  CHECK(html.find("<li class=\"warn\">stage 1: non-monotone</li>") != std::string::npos);
  CHECK(html.find("src=") == std::string::npos);  // self-contained: no external resources
}
