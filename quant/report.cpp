#include "quant/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/error.h"

namespace mpq::quant {

std::vector<int> k_grid(int n, int points) {
  check(n >= 0, "k grid: {} layers", n);
  std::vector<int> ks;
  if (points <= 0 || points > n) {
    for (int k = 0; k <= n; ++k) ks.push_back(k);
    return ks;
  }
  check(points >= 2, "k grid: {} points cannot include both 0 and {}", points, n);
  for (int i = 0; i < points; ++i) {
    const int k = int(std::lround(double(i) * n / double(points - 1)));
    if (ks.empty() || k > ks.back()) ks.push_back(k);
  }
  return ks;
}

ParetoSweeps ordering_points(int n, const std::vector<OrderingSweep>& orderings, int points, const ConfigMetric& metric,
                             const ConfigValue& latency_ms, const ConfigValue& bytes, const std::string& latency_source,
                             const AccuracyRange& range, std::optional<double> reference,
                             const std::function<void(int64_t, int64_t)>& progress, Precision start) {
  const std::vector<int> ks = k_grid(n, points);
  const int64_t total = int64_t(orderings.size()) * 2 * int64_t(ks.size());
  int64_t done = 0;
  ParetoSweeps out;
  for (const OrderingSweep& o : orderings) {
    OrderingFrontier f;
    f.name = o.name;
    for (Precision target : {Precision::int8, Precision::int4}) {
      const Precision from = target == Precision::int8 ? start : Precision::int8;
      const std::vector<int>& order = target == Precision::int8 ? o.order8 : o.order4;
      check(int(order.size()) == n, "pareto: ordering '{}' has {} entries for {} layers", o.name, order.size(), n);
      // record the configuration of every probe as sweep_k asks for it (k ascending)
      std::vector<std::vector<Precision>> configs;
      const ConfigMetric recording = [&](const std::vector<Precision>& p) {
        configs.push_back(p);
        const double m = metric(p);
        if (progress) progress(++done, total);
        return m;
      };
      SweepResult s = sweep_k(std::vector<Precision>(size_t(n), from), order, target, recording, range, ks, reference);
      for (size_t i = 0; i < s.probes.size(); ++i)
        out.points.push_back({o.name, precision_name(target), s.probes[i].k, s.probes[i].metric, latency_ms(configs[i]),
                              bytes(configs[i]), latency_source});
      (target == Precision::int8 ? f.int8 : f.int4) = std::move(s);
    }
    out.sweeps.push_back(std::move(f));
  }
  return out;
}

double space_x(const ParetoPoint& p, Space s) { return s == Space::latency ? p.latency_ms : p.weight_bytes / 1e6; }
const char* space_unit(Space s) { return s == Space::latency ? "ms" : "MB"; }

std::vector<std::pair<double, double>> step_frontier(const std::vector<ParetoPoint>& pts, Space space) {
  std::vector<std::pair<double, double>> lm;  // (x, metric)
  for (const ParetoPoint& p : pts) lm.push_back({space_x(p, space), p.metric});
  std::sort(lm.begin(), lm.end());
  std::vector<std::pair<double, double>> f;
  for (const auto& [l, m] : lm) {
    if (!f.empty() && f.back().first == l) {
      f.back().second = std::max(f.back().second, m);
      continue;
    }
    f.push_back({l, f.empty() ? m : std::max(f.back().second, m)});
  }
  return f;
}

namespace {
// F(l) of a step frontier (corners ascending); l must be >= the first corner's latency.
double frontier_at(const std::vector<std::pair<double, double>>& f, double l) {
  double v = f.front().second;
  for (const auto& [cl, cm] : f) {
    if (cl > l) break;
    v = cm;
  }
  return v;
}
}  // namespace

FrontierArea frontier_area(const std::vector<ParetoPoint>& a, const std::vector<ParetoPoint>& b, Space space) {
  FrontierArea r;
  r.space = space;
  if (a.empty() || b.empty()) return r;
  const auto fa = step_frontier(a, space), fb = step_frontier(b, space);
  r.lo_ms = std::max(fa.front().first, fb.front().first);
  r.hi_ms = std::min(fa.back().first, fb.back().first);
  if (!(r.hi_ms > r.lo_ms)) {
    r.lo_ms = r.hi_ms = 0;
    return r;
  }
  r.empty = false;
  std::set<double> cuts = {r.lo_ms, r.hi_ms};
  for (const auto* f : {&fa, &fb})
    for (const auto& c : *f)
      if (c.first > r.lo_ms && c.first < r.hi_ms) cuts.insert(c.first);
  const std::vector<double> t(cuts.begin(), cuts.end());
  for (size_t i = 0; i + 1 < t.size(); ++i) {
    const double d = frontier_at(fa, t[i]) - frontier_at(fb, t[i]), w = t[i + 1] - t[i];
    r.area += d * w;
    (d > 0 ? r.positive : r.negative) += std::abs(d) * w;
  }
  r.mean_diff = r.area / (r.hi_ms - r.lo_ms);
  return r;
}

std::vector<ParetoPoint> points_of(const std::vector<ParetoPoint>& pts, const std::string& ordering) {
  std::vector<ParetoPoint> out;
  for (const ParetoPoint& p : pts)
    if (p.ordering == ordering) out.push_back(p);
  return out;
}

std::string pareto_csv(const std::vector<ParetoPoint>& pts) {
  std::string s = "ordering,stage,k,metric,latency_ms,weight_bytes,latency_source\n";
  for (const ParetoPoint& p : pts)
    s += fmt::format("{},{},{},{},{},{},{}\n", p.ordering, p.stage, p.k, p.metric, p.latency_ms, p.weight_bytes,
                     p.latency_source);
  return s;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo) || target < 1) return {lo};
  const double raw = (hi - lo) / target, mag = std::pow(10.0, std::floor(std::log10(raw))), r = raw / mag;
  const double step = (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
  std::vector<double> t;
  const double first = std::ceil(lo / step - 1e-9);
  for (int i = 0;; ++i) {
    double v = (first + i) * step;
    if (v > hi + step * 1e-9) break;
    if (std::abs(v) < step * 1e-9) v = 0;  // no "-0"
    t.push_back(v);
  }
  return t;
}

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      case '\'':
        o += "&#39;";
        break;
      default:
        o += c;
    }
  return o;
}

namespace {

struct Style {
  const char* colour;
  int marker;  // 0 circle, 1 square, 2 triangle, 3 diamond
};
Style style_of(const std::string& ordering, size_t fallback) {
  static const std::map<std::string, Style> known = {{"augmented", {"#d62728", 0}},
                                                     {"hessian", {"#1f77b4", 1}},
                                                     {"single", {"#2ca02c", 2}},
                                                     {"random", {"#7f7f7f", 3}}};
  static const char* extra[] = {"#9467bd", "#8c564b", "#e377c2", "#17becf"};
  auto it = known.find(ordering);
  return it != known.end() ? it->second : Style{extra[fallback % 4], int(fallback % 4)};
}

// hollow: outline only (the int4 stage's points), else filled (the int8 stage's)
std::string marker(double x, double y, const Style& s, bool hollow = false) {
  const double r = 3.5;
  const std::string paint = hollow ? fmt::format("fill=\"white\" stroke=\"{}\" stroke-width=\"1.5\"", s.colour)
                                   : fmt::format("fill=\"{}\"", s.colour);
  switch (s.marker) {
    case 0:
      return fmt::format("<circle cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"{}\" {}/>", x, y, r, paint);
    case 1:
      return fmt::format("<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{}\" height=\"{}\" {}/>", x - r, y - r, 2 * r, 2 * r,
                         paint);
    case 2:
      return fmt::format("<polygon points=\"{:.2f},{:.2f} {:.2f},{:.2f} {:.2f},{:.2f}\" {}/>", x, y - r - 1,
                         x - r - 0.5, y + r, x + r + 0.5, y + r, paint);
    default:
      return fmt::format("<polygon points=\"{:.2f},{:.2f} {:.2f},{:.2f} {:.2f},{:.2f} {:.2f},{:.2f}\" {}/>", x,
                         y - r - 1, x + r + 1, y, x, y + r + 1, x - r - 1, y, paint);
  }
}

std::string tick_label(double v, double step) {
  const int dec = std::clamp(int(-std::floor(std::log10(step) + 1e-9)), 0, 6);
  return fmt::format("{:.{}f}", v, dec);
}

}  // namespace

std::string pareto_svg(const std::vector<ParetoPoint>& pts, const PlotOptions& opt) {
  const double W = opt.width, H = opt.height, x0 = 70, x1 = W - 170, y0 = 40, y1 = H - 55;
  double xlo = 1e300, xhi = -1e300, ylo = 1e300, yhi = -1e300;
  for (const ParetoPoint& p : pts) {
    xlo = std::min(xlo, space_x(p, opt.space)), xhi = std::max(xhi, space_x(p, opt.space));
    ylo = std::min(ylo, p.metric), yhi = std::max(yhi, p.metric);
  }
  if (pts.empty()) xlo = 0, xhi = 1, ylo = 0, yhi = 1;
  if (!std::isnan(opt.y_min)) ylo = std::min(opt.y_min, yhi);
  if (!(xhi > xlo)) xlo -= 0.5, xhi += 0.5;
  if (!(yhi > ylo)) ylo -= 0.5, yhi += 0.5;
  const double xp = 0.04 * (xhi - xlo), yp = 0.04 * (yhi - ylo);
  xlo -= xp, xhi += xp, yhi += yp;
  if (std::isnan(opt.y_min)) ylo -= yp;
  auto X = [&](double l) { return x0 + (l - xlo) / (xhi - xlo) * (x1 - x0); };
  auto Y = [&](double m) { return y1 - (m - ylo) / (yhi - ylo) * (y1 - y0); };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n"
      "<clipPath id=\"{2}-clip\"><rect x=\"{3}\" y=\"{4}\" width=\"{5}\" height=\"{6}\"/></clipPath>\n",
      W, H, opt.id, x0, y0, x1 - x0, y1 - y0);
  s += fmt::format("<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n", (x0 + x1) / 2,
                   html_escape(opt.title));
  // axes, grid, ticks
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n", x0, y0,
                   x1 - x0, y1 - y0);
  const std::vector<double> xt = nice_ticks(xlo, xhi), yt = nice_ticks(ylo, yhi);
  const double xs = xt.size() > 1 ? xt[1] - xt[0] : 1, ys = yt.size() > 1 ? yt[1] - yt[0] : 1;
  for (double t : xt)
    s += fmt::format(
        "<line x1=\"{0:.2f}\" y1=\"{1}\" x2=\"{0:.2f}\" y2=\"{2}\" stroke=\"#e0e0e0\"/><line x1=\"{0:.2f}\" "
        "y1=\"{2}\" x2=\"{0:.2f}\" y2=\"{3}\" stroke=\"black\"/><text x=\"{0:.2f}\" y=\"{4}\" "
        "text-anchor=\"middle\">{5}</text>\n",
        X(t), y0, y1, y1 + 5, y1 + 18, tick_label(t, xs));
  for (double t : yt)
    s += fmt::format(
        "<line x1=\"{0}\" y1=\"{1:.2f}\" x2=\"{2}\" y2=\"{1:.2f}\" stroke=\"#e0e0e0\"/><line x1=\"{3}\" "
        "y1=\"{1:.2f}\" x2=\"{0}\" y2=\"{1:.2f}\" stroke=\"black\"/><text x=\"{4}\" y=\"{5:.2f}\" "
        "text-anchor=\"end\">{6}</text>\n",
        x0, Y(t), x1, x0 - 5, x0 - 8, Y(t) + 4, tick_label(t, ys));
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", (x0 + x1) / 2, H - 15,
                   html_escape(opt.x_label));
  s += fmt::format("<text x=\"18\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {0})\">{1}</text>\n",
                   (y0 + y1) / 2, html_escape(opt.y_label));
  // orderings: frontier polyline + markers, clipped to the plot area
  std::vector<std::string> names;
  for (const ParetoPoint& p : pts)
    if (p.ordering != "uniform" && std::find(names.begin(), names.end(), p.ordering) == names.end())
      names.push_back(p.ordering);
  s += fmt::format("<g clip-path=\"url(#{}-clip)\">\n", opt.id);
  for (size_t i = 0; i < names.size(); ++i) {
    const Style st = style_of(names[i], i);
    const std::vector<ParetoPoint> mine = points_of(pts, names[i]);
    const auto f = step_frontier(mine, opt.space);
    std::string line;
    for (size_t c = 0; c < f.size(); ++c) {
      if (c > 0) line += fmt::format("{:.2f},{:.2f} ", X(f[c].first), Y(f[c - 1].second));
      line += fmt::format("{:.2f},{:.2f} ", X(f[c].first), Y(f[c].second));
    }
    s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"/>\n", line, st.colour);
    for (const ParetoPoint& p : mine) s += marker(X(space_x(p, opt.space)), Y(p.metric), st, p.stage == "int4") + "\n";
  }
  if (opt.threshold)
    s += fmt::format(
        "<line x1=\"{0}\" y1=\"{1:.2f}\" x2=\"{2}\" y2=\"{1:.2f}\" stroke=\"#a00\" stroke-dasharray=\"6,4\"/>"
        "<text x=\"{3}\" y=\"{4:.2f}\" font-size=\"11\" fill=\"#a00\" text-anchor=\"end\">range threshold</text>\n",
        x0, Y(*opt.threshold), x1, x1 - 4, Y(*opt.threshold) - 4);
  if (opt.chosen) {
    const double cx = X(space_x(*opt.chosen, opt.space)), cy = Y(opt.chosen->metric);
    s += fmt::format(
        "<circle cx=\"{0:.2f}\" cy=\"{1:.2f}\" r=\"9\" fill=\"none\" stroke=\"black\" stroke-width=\"2\"/>"
        "<text x=\"{0:.2f}\" y=\"{2:.2f}\" font-size=\"11\" font-weight=\"bold\" "
        "text-anchor=\"middle\">chosen</text>\n",
        cx, cy, cy - 13);
  }
  // uniform points; points that land within 4 px of each other share one label ("fp32/fp16/bf16")
  std::vector<std::pair<std::pair<double, double>, std::string>> crosses;
  for (const ParetoPoint& p : points_of(pts, "uniform")) {
    const double x = X(space_x(p, opt.space)), y = Y(p.metric);
    auto it = std::find_if(crosses.begin(), crosses.end(), [&](const auto& c) {
      return std::abs(c.first.first - x) < 4 && std::abs(c.first.second - y) < 4;
    });
    if (it != crosses.end()) {
      it->second += "/" + p.stage;
      continue;
    }
    crosses.push_back({{x, y}, p.stage});
  }
  for (const auto& [xy, label] : crosses)
    s += fmt::format(
        "<path d=\"M{0:.2f},{1:.2f} l10,10 m0,-10 l-10,10\" stroke=\"black\" stroke-width=\"2\" "
        "transform=\"translate(-5,-5)\"/><text x=\"{2:.2f}\" y=\"{3:.2f}\" font-size=\"11\" "
        "text-anchor=\"{4}\">{5}</text>\n",
        xy.first, xy.second, xy.first + (xy.first > x1 - 80 ? -7 : 7), xy.second - 6,
        xy.first > x1 - 80 ? "end" : "start", html_escape(label));
  s += "</g>\n";
  // legend
  double ly = y0 + 10;
  for (size_t i = 0; i < names.size(); ++i, ly += 20) {
    const Style st = style_of(names[i], i);
    s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"1.5\"/>", x1 + 15, ly,
                     x1 + 45, ly, st.colour);
    s += marker(x1 + 30, ly, st);
    s += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", x1 + 52, ly + 4, html_escape(names[i]));
  }
  if (!points_of(pts, "uniform").empty()) {
    s += fmt::format(
        "<path d=\"M{0},{1} l10,10 m0,-10 l-10,10\" stroke=\"black\" stroke-width=\"2\"/><text x=\"{2}\" "
        "y=\"{3}\">uniform</text>\n",
        x1 + 25, ly - 5, x1 + 52, ly + 4);
    ly += 20;
  }
  const Style grey{"#444", 0};
  s += marker(x1 + 30, ly, grey) + fmt::format("<text x=\"{}\" y=\"{}\">int8 stage</text>\n", x1 + 52, ly + 4);
  ly += 20;
  s += marker(x1 + 30, ly, grey, true) + fmt::format("<text x=\"{}\" y=\"{}\">int4 stage</text>\n", x1 + 52, ly + 4);
  s += "</svg>\n";
  return s;
}

std::string render_html(const HtmlReport& r) {
  std::string s =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + html_escape(r.title) +
      "</title>\n<style>body{font-family:sans-serif;max-width:980px;margin:1em auto;padding:0 1em;color:#222}"
      "table{border-collapse:collapse;margin:0.6em 0 1.2em}td,th{border:1px solid #bbb;padding:2px 8px;"
      "text-align:left;font-size:13px}th{background:#f0f0f0}caption{text-align:left;font-weight:bold;"
      "padding:4px 0}.warn{color:#a00}</style></head>\n<body>\n<h1>" +
      html_escape(r.title) + "</h1>\n";
  for (const std::string& p : r.paragraphs) s += "<p>" + html_escape(p) + "</p>\n";
  for (const HtmlTable& t : r.tables) {
    s += "<table><caption>" + html_escape(t.caption) + "</caption>\n<tr>";
    for (const std::string& h : t.header) s += "<th>" + html_escape(h) + "</th>";
    s += "</tr>\n";
    for (const auto& row : t.rows) {
      s += "<tr>";
      for (const std::string& c : row) s += "<td>" + html_escape(c) + "</td>";
      s += "</tr>\n";
    }
    s += "</table>\n";
  }
  for (const std::string& svg : r.svgs) s += "<div>\n" + svg + "</div>\n";
  if (!r.warnings.empty()) {
    s += "<h2>Warnings</h2>\n<ul>\n";
    for (const std::string& w : r.warnings) s += "<li class=\"warn\">" + html_escape(w) + "</li>\n";
    s += "</ul>\n";
  }
  s += "</body></html>\n";
  return s;
}

}  // namespace mpq::quant
