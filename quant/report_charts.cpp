// The per-layer charts of the search report: the precision map and the sensitivity bars (quant/report.h).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "quant/report.h"

namespace mpq::quant {

namespace {
const char* precision_colour(Precision p) {
  switch (p) {
    case Precision::fp32:
      return "#4d4d4d";
    case Precision::fp16:
      return "#9ecae1";
    case Precision::bf16:
      return "#3182bd";
    case Precision::int8:
      return "#fd8d3c";
    case Precision::int4:
      return "#d62728";
  }
  return "#000";
}
}  // namespace

std::string precision_map_svg(const std::vector<std::string>& layers, const std::vector<Precision>& precisions,
                              const std::string& title) {
  check(layers.size() == precisions.size(), "precision map: {} layers, {} precisions", layers.size(),
        precisions.size());
  // cells of 18 x 18 px, 36 per row: ResNet50's 54 layers take two rows, BERT-base's 98 three
  constexpr int kCell = 18, kPerRow = 36, kLeft = 10, kTop = 34;
  const int n = int(layers.size()), rows = std::max(1, (n + kPerRow - 1) / kPerRow);
  const int W = kLeft * 2 + kPerRow * kCell, H = kTop + rows * kCell + 40;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"20\" font-size=\"14\">{3}</text>\n",
      W, H, kLeft, html_escape(title));
  for (int i = 0; i < n; ++i) {
    const int x = kLeft + (i % kPerRow) * kCell, y = kTop + (i / kPerRow) * kCell;
    s += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"white\"><title>{} {}: "
        "{}</title></rect>\n",
        x, y, kCell, kCell, precision_colour(precisions[size_t(i)]), i, html_escape(layers[size_t(i)]),
        precision_name(precisions[size_t(i)]));
  }
  int lx = kLeft;
  const int ly = kTop + rows * kCell + 22;
  for (Precision p : {Precision::fp32, Precision::fp16, Precision::bf16, Precision::int8, Precision::int4}) {
    const auto count = std::count(precisions.begin(), precisions.end(), p);
    s += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{} ({})</text>\n", lx,
        ly - 10, precision_colour(p), lx + 16, ly, precision_name(p), count);
    lx += 100;
  }
  s += "</svg>\n";
  return s;
}

std::string sensitivity_svg(const std::vector<std::string>& layers, const std::vector<BarSeries>& series,
                            const std::string& title) {
  static const char* colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"};
  const size_t n = layers.size();
  double vmax = 0;
  for (const BarSeries& b : series) {
    check(b.values.size() == n, "sensitivity chart: series '{}' has {} values for {} layers", b.name, b.values.size(),
          n);
    for (double v : b.values)
      if (std::isfinite(v)) vmax = std::max(vmax, std::abs(v));
  }
  if (vmax == 0) vmax = 1;
  // one row per layer (bars of 3 px per series), a label column, the zero line in the middle of the bar area
  const double bar = 3, row = bar * double(series.size()) + 3, label_w = 280, area_w = 440, top = 50;
  const double W = label_w + area_w + 20, H = top + row * double(n) + 20;
  const double zero = label_w + area_w / 2, half = area_w / 2 - 4;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1:.0f}\" viewBox=\"0 0 {0} {1:.0f}\" "
      "font-family=\"sans-serif\" font-size=\"9\">\n<rect width=\"{0}\" height=\"{1:.0f}\" fill=\"white\"/>\n"
      "<text x=\"10\" y=\"18\" font-size=\"14\">{2}</text>\n",
      W, H, html_escape(title));
  double lx = 10;
  for (size_t k = 0; k < series.size(); ++k) {
    s += fmt::format(
        "<rect x=\"{:.0f}\" y=\"28\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.0f}\" y=\"37\" "
        "font-size=\"11\">{}</text>\n",
        lx, colours[k % 4], lx + 14, html_escape(series[k].name));
    lx += 14 + 7.0 * double(series[k].name.size()) + 20;
  }
  s += fmt::format(
      "<text x=\"{:.0f}\" y=\"{:.0f}\" text-anchor=\"end\" font-size=\"10\">scale: half width = {:.3g}</text>\n",
      W - 10, top - 4, vmax);
  s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.0f}\" x2=\"{0:.1f}\" y2=\"{2:.0f}\" stroke=\"black\"/>\n", zero, top,
                   H - 15);
  for (size_t i = 0; i < n; ++i) {
    const double y = top + row * double(i);
    s += fmt::format("<text x=\"{:.0f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", label_w - 6, y + row / 2 + 3,
                     html_escape(layers[i]));
    for (size_t k = 0; k < series.size(); ++k) {
      const double v = series[k].values[i];
      if (!std::isfinite(v)) continue;
      const double w = std::abs(v) / vmax * half;
      s += fmt::format(
          "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{}\" fill=\"{}\"><title>{}: {} "
          "{:.4g}</title></rect>\n",
          v >= 0 ? zero : zero - w, y + bar * double(k), std::max(w, 0.5), bar, colours[k % 4], html_escape(layers[i]),
          html_escape(series[k].name), v);
    }
  }
  s += "</svg>\n";
  return s;
}

}  // namespace mpq::quant
