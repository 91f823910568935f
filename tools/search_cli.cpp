#include "tools/search_cli.h"

#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <memory>

#include "core/file_io.h"
#include "core/threading.h"
#include "models/zoo.h"
#include "quant/pipeline_report.h"
#include "tools/cli.h"
#include "tools/progress.h"

namespace mpq::cli {

namespace {

// Progress bars per phase on stderr, log lines through the console rules (tools/progress.h).
class CliObserver : public quant::SearchObserver {
 public:
  void log(const std::string& line) override {
    if (!console().quiet) fmt::print(stderr, "{}\n", line);
  }
  void progress(const std::string& phase, int64_t done, int64_t total, const std::string& note) override {
    auto& b = bars_[phase];
    if (!b) b = std::make_unique<Progress>(phase, total);
    b->set_total(total);
    b->update(done, note);
  }
  void phase_end(const std::string& phase) override {
    auto it = bars_.find(phase);
    if (it != bars_.end()) it->second->finish();
    bars_.erase(phase);
  }

 private:
  std::map<std::string, std::unique_ptr<Progress>> bars_;
};

std::string ms_text(const std::optional<double>& v) { return v ? fmt::format("{:.3f} ms", *v) : std::string("n/a"); }
std::string pct(const std::optional<double>& chosen, const std::optional<double>& base) {
  return chosen && base ? fmt::format("{:+.1f}%", -100 * (1 - *chosen / *base)) : std::string("n/a");
}

void print_summary(const quant::SearchOutcome& o, const std::string& config_path, const std::string& report_dir) {
  const quant::SearchResult& b = o.runs.front().bisection;
  fmt::print("{} on {} test samples ({}):\n", o.model, o.test_samples, o.split_note);
  fmt::print(
      "  {} fp32 {:.2f}%  fp16 {:.2f}%  bf16 {:.2f}%  int8 {:.2f}%  int4 {:.2f}%  chosen (k8 {}, k4 {}) {:.2f}%\n",
      o.metric_label, o.test.at("fp32"), o.test.at("fp16"), o.test.at("bf16"), o.test.at("int8"), o.test.at("int4"),
      b.k8, b.k4, o.metric_test);
  const quant::LatencyFigures& u = o.compared();
  fmt::print("  latency [{}]: chosen {} | fp16 {} ({} vs fp16) | bf16 {} ({}) | fp32 {} ({})\n", o.latency_source,
             ms_text(u.chosen), ms_text(u.fp16), pct(u.chosen, u.fp16), ms_text(u.bf16), pct(u.chosen, u.bf16),
             ms_text(u.fp32), pct(u.chosen, u.fp32));
  if (u.int8)
    fmt::print("  latency all-int8 {} (chosen {} vs int8), all-int4 {}\n", ms_text(u.int8), pct(u.chosen, u.int8),
               ms_text(u.int4));
  const double int8_bytes = o.bytes(std::vector<Precision>(o.layers.size(), Precision::int8));
  fmt::print("  stored bytes: chosen {:.3f} MB = {:.3f}x all-int8 ({:.3f} MB); objective {}\n", b.weight_bytes / 1e6,
             b.weight_bytes / int8_bytes, int8_bytes / 1e6, enum_name(quant::kObjectiveNames, o.request.objective));
  for (const quant::AreaRow& a : o.areas)
    if (!a.area.empty)
      fmt::print("  frontier area ({}) {} - {}: {:.4g} points x {} over [{:.3f}, {:.3f}] {} (mean {:+.3f} points)\n",
                 enum_name(quant::kSpaceNames, a.area.space), a.a, a.b, a.area.area, quant::space_unit(a.area.space),
                 a.area.lo_ms, a.area.hi_ms, quant::space_unit(a.area.space), a.area.mean_diff);
  for (const auto& w : o.warnings) fmt::print("  warning: {}\n", w);
  fmt::print(
      "  config {}  report {}/report.html  {} evaluations by the bisection, {} fresh in all, wall {:.1f} s on {} "
      "threads\n",
      config_path, report_dir, b.evaluations, o.evaluations_fresh, o.seconds, o.threads);
}

}  // namespace

int run_search_request(const std::string& model_name, const quant::SearchRequest& request,
                       const std::string& config_path, const std::string& report_dir, bool as_json) {
  request.validate();
  // the outputs are checked before the analysis starts, not after an hour of it
  {
    const std::string parent = std::filesystem::path(config_path).parent_path().string();
    if (!parent.empty()) create_output_dir(parent);
    check_output_file(config_path);
  }
  create_output_dir(report_dir);
  if (!request.cache_dir.empty()) check_output_dir(request.cache_dir);  // the analysis cache writes there
  auto model = models::load_model(model_name, request.weights);
  CliObserver obs;
  const quant::SearchOutcome o = quant::run_search(*model, request, obs);
  quant::write_search_outputs(o, config_path, report_dir);
  if (as_json)
    fmt::print("{}\n", quant::summary_json(o, config_path, report_dir).dump());
  else
    print_summary(o, config_path, report_dir);
  return o.within_range ? 0 : kExitOutsideRange;
}

}  // namespace mpq::cli
