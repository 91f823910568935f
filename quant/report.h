// The accuracy-vs-latency Pareto report of a search: the points, their step frontiers, the area between two
// frontiers, and the three files written from them (CSV, SVG plot, self-contained HTML summary).
//
// Points. For each ordering (augmented, Hessian-only, single-effect-only, random) two sweeps along the
// ordering, each evaluated with sweep_k (quant/search.h) on the search split:
//   stage "int8": start all fp16 (or the search's --start precision, bf16), the first k layers of the
//                 ordering's int8 order lowered to int8;
//   stage "int4": start all int8 (the end of stage "int8"), the first k layers of the int4 order lowered
//                 to int4 ("int4 among the int8 layers", docs/method.md step 4, continued to all layers).
// Both stages share the ordering-independent end points all-start, all-int8 and all-int4, so every ordering's
// frontier spans the same latency interval. k runs over a grid (every k, or P evenly spaced values that
// always include 0 and N). The uniform points fp32 / fp16 / bf16 / int8 / int4 are added with ordering
// "uniform".
//
// Step frontier of a point set P (latency l_p, metric m_p):
//   F_P(l) = max { m_p : p in P, l_p <= l }        for l >= min_p l_p,
// the best metric reachable within latency l: non-decreasing, right-continuous, constant between the
// latencies of P. A point that is slower AND worse than another never shows in F.
//
// Area between the frontiers of A and B (A = augmented, B = Hessian-only in the report):
//   [lo, hi]   = [max(min l over A, min l over B), min(max l over A, max l over B)]  (the common interval)
//   area       = integral over [lo, hi] of (F_A(l) - F_B(l)) dl        in metric points x ms
//   positive   = integral of max(F_A - F_B, 0),  negative = integral of max(F_B - F_A, 0)
//                (area = positive - negative; negative == 0 means A's frontier is nowhere below B's)
//   mean_diff  = area / (hi - lo)                                       in metric points
//                (the average metric advantage of A over B at equal latency; 0 when hi <= lo)
// computed exactly: both frontiers are constant between consecutive point latencies.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/enum_table.h"
#include "quant/search.h"

namespace mpq::quant {

struct ParetoPoint {
  std::string ordering;        // "augmented" | "hessian" | "single" | "random" | "uniform"
  std::string stage;           // "int8" | "int4" for sweeps; the precision name for uniform points
  int k = 0;                   // layers lowered in the stage (N for uniform points)
  double metric = 0;           // task metric in percent (top-1 %, accuracy %)
  double latency_ms = 0;       // from the latency source below
  double weight_bytes = 0;     // quant/search.h weight_bytes
  std::string latency_source;  // "measured" or "ESTIMATE"
};

using ConfigValue = std::function<double(const std::vector<Precision>&)>;  // [N] precisions -> value

struct OrderingSweep {
  std::string name;                 // ordering name
  std::vector<int> order8, order4;  // permutations of [0, N), least sensitive first
};

// The k grid of a sweep over n layers: every k in [0, n] when points <= 0 or points > n, else `points`
// values round(i * n / (points - 1)), i = 0 .. points - 1 (0 and n always included; needs points >= 2).
std::vector<int> k_grid(int n, int points);

struct OrderingFrontier {
  std::string name;
  SweepResult int8, int4;  // the two stages' sweeps (best_k / prefix_k against `range`, on the k grid)
};
struct ParetoSweeps {
  std::vector<ParetoPoint> points;  // sweep points of every ordering, in evaluation order
  std::vector<OrderingFrontier> sweeps;
};

// Sweeps every ordering (stages int8 and int4, see the top of this file) over k_grid(n, points).
// metric: percent (callers memoise it: the shared end points are asked for by every ordering); `range`
// (in the same units) against `reference` (unset: each sweep's k = 0) only labels the sweep results.
// progress(done, total) after every point. start: the 16-bit precision stage "int8" lowers from.
ParetoSweeps ordering_points(int n, const std::vector<OrderingSweep>& orderings, int points, const ConfigMetric& metric,
                             const ConfigValue& latency_ms, const ConfigValue& bytes, const std::string& latency_source,
                             const AccuracyRange& range, std::optional<double> reference = std::nullopt,
                             const std::function<void(int64_t, int64_t)>& progress = {},
                             Precision start = Precision::fp16);

// The two spaces a frontier lives in: metric against measured latency (ms) or against stored bytes (reported
// in MB = 1e6 bytes). In both, smaller is better along the x axis, so the step frontier and the area between
// two frontiers are defined the same way with x = latency_ms or x = weight_bytes / 1e6.
enum class Space { latency, bytes };
inline constexpr std::array<EnumName<Space>, 2> kSpaceNames{{{Space::latency, "latency"}, {Space::bytes, "bytes"}}};
double space_x(const ParetoPoint& p, Space s);  // latency_ms, or weight_bytes / 1e6
const char* space_unit(Space s);                // "ms" | "MB"

// (x, F(x)) at every distinct x of `pts`, ascending: the corners of the step frontier.
std::vector<std::pair<double, double>> step_frontier(const std::vector<ParetoPoint>& pts, Space space = Space::latency);

struct FrontierArea {
  Space space = Space::latency;
  double lo_ms = 0, hi_ms = 0;  // common x interval (ms, or MB in the bytes space)
  double area = 0;              // metric points x ms (or x MB; see the top of this file)
  double positive = 0, negative = 0;
  double mean_diff = 0;  // metric points
  bool empty = true;     // hi <= lo (then every figure is 0)
};
FrontierArea frontier_area(const std::vector<ParetoPoint>& a, const std::vector<ParetoPoint>& b,
                           Space space = Space::latency);

// The points of one ordering (or of "uniform").
std::vector<ParetoPoint> points_of(const std::vector<ParetoPoint>& pts, const std::string& ordering);

// "ordering,stage,k,metric,latency_ms,weight_bytes,latency_source" then one row per point.
std::string pareto_csv(const std::vector<ParetoPoint>& pts);

struct PlotOptions {
  Space space = Space::latency;  // the x axis
  std::string title;
  std::string x_label = "latency (ms)";
  std::string y_label = "metric (%)";
  double y_min = std::numeric_limits<double>::quiet_NaN();  // NaN: from the data; else points below are clipped
  std::string id = "p";  // prefix of element ids (two plots inlined in one HTML page need distinct ids)
  int width = 760, height = 460;
  std::optional<double> threshold;    // the accuracy range's threshold: a dashed horizontal line
  std::optional<ParetoPoint> chosen;  // highlighted with a ring and a label
};
// Hand-written SVG: axes with ticks and labels, per ordering its step frontier as a polyline and its points
// as markers (one colour and marker shape per ordering; stage int8 filled, stage int4 hollow), the uniform
// points as labelled crosses, the range threshold as a dashed line, the chosen point ringed, a legend.
std::string pareto_svg(const std::vector<ParetoPoint>& pts, const PlotOptions& opt);

// Per-layer precision map: one cell per layer, in layer order, wrapped into rows, coloured by precision
// (a legend names the colours; each cell's tooltip names its layer).
std::string precision_map_svg(const std::vector<std::string>& layers, const std::vector<Precision>& precisions,
                              const std::string& title);

// Per-layer sensitivity chart: for every layer one group of horizontal bars, one per series (e.g. the
// rescaled Hessian term a * Omega_i, the single effect dL_i and the dependency sum 1/2 sum_j I_ij, all in
// loss units), signed around a zero line, on one common scale.
struct BarSeries {
  std::string name;
  std::vector<double> values;  // [N]
};
std::string sensitivity_svg(const std::vector<std::string>& layers, const std::vector<BarSeries>& series,
                            const std::string& title);

// "Nice" tick positions (steps of 1, 2 or 5 x 10^e) covering [lo, hi], about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

// Everything the HTML summary shows; tables are pre-formatted strings.
struct HtmlTable {
  std::string caption;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};
struct HtmlReport {
  std::string title;
  std::vector<std::string> paragraphs;  // plain text (escaped)
  std::vector<HtmlTable> tables;        // in order, after the paragraphs
  std::vector<std::string> svgs;        // inlined verbatim after the tables
  std::vector<std::string> warnings;    // plain text (escaped), listed last
};
std::string render_html(const HtmlReport& r);
std::string html_escape(const std::string& s);

}  // namespace mpq::quant
