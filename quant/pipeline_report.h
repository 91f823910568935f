// The files a search leaves behind, rendered from its typed outcome (quant/pipeline.h):
//   config.json                      the chosen configuration (quant/config.h), loadable by eval / bench / export
//   REPORT/report.json               summary_json below
//   REPORT/report.html               self-contained page: both plots inlined, tables, warnings
//   REPORT/pareto.svg, pareto_zoom.svg (latency space), pareto_bytes.svg, pareto_bytes_zoom.svg (bytes
//   space), precisions.svg, sensitivity.svg, pareto.csv, probes.csv, latency.json (when measured here)
// Every file is written atomically (core/atomic_write.h).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "quant/pipeline.h"

namespace mpq::quant {

// The summary object (`mpq search --json` prints it; report.json holds it): baseline_metric and metric (test
// split, percent), latency_ms, fp16/bf16/fp32_latency_ms, reduction_vs_fp16/bf16/fp32, k8, k4, weight bytes,
// the settings, the per-ordering bisections, the frontier areas, phases and warnings. `config_path` and
// `report_dir` are echoed.
nlohmann::json summary_json(const SearchOutcome& o, const std::string& config_path, const std::string& report_dir);

struct SearchHtml {
  std::string svg_full;         // metric vs latency, every point
  std::string svg_zoom;         // the same with the metric axis cut near the reference (points below clipped)
  std::string svg_bytes;        // metric vs stored bytes, every point
  std::string svg_bytes_zoom;   // the same, zoomed
  std::string svg_precisions;   // per-layer precision map of the chosen configuration
  std::string svg_sensitivity;  // per-layer sensitivity bars (int4 scores: Hessian term, single, dependencies)
  std::string html;             // self-contained: every plot inlined, no external resources
};
SearchHtml search_html(const SearchOutcome& o);

// Writes config_path (the chosen configuration) and every report file into report_dir (created if needed).
void write_search_outputs(const SearchOutcome& o, const std::string& config_path, const std::string& report_dir);

}  // namespace mpq::quant
