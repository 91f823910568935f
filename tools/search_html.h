// The HTML summary and the two SVG plots of `mpq search` (quant/report.h does the generic rendering; this
// file decides what the page says, from the search's summary JSON).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/model.h"
#include "quant/fake_quant.h"
#include "quant/report.h"
#include "quant/search.h"

namespace mpq::cli {

struct SearchHtml {
  std::string svg_full;  // every point
  std::string svg_zoom;  // the metric axis cut to the region near the reference (points below are clipped)
  std::string html;      // self-contained: both plots inlined, no external resources
};

// summary: the object `mpq search --json` prints; pts: the Pareto points (search split); chosen: the written
// configuration; lat: the per-layer latency table the figures come from.
SearchHtml search_html(const nlohmann::json& summary, const std::vector<quant::ParetoPoint>& pts,
                       const std::vector<models::QuantLayer>& layers, const Assignment& chosen,
                       const quant::LatencyTable& lat);

}  // namespace mpq::cli
