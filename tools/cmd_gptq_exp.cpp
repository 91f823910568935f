// `mpq gptq-exp`: the weight-rounding experiments (quant/gptq*.h). Uniform W4A8 (every weight layer int4,
// inputs uint8 per tensor with the search's calibration) on the test split, for a list of rounding recipes,
// against fp32 on the same samples. A developer command: its output is the results log behind the README's
// int4 accuracy table.
//
// Splits (quant/task.h make_task, seeded): images: --calib N calibration images, the other 1300 - N images are
// evaluated; SST-2: --calib N train sentences, every dev sentence evaluated. Activation ranges come from the
// first --act-calib calibration samples (quant::calibrate, the search's observer choice).
//
// Recipe: comma-separated tokens, applied to the default (gptq, per channel, int4):
//   nearest | gptq | exhaustive   rounding              g0 | g32 | g64 | g128   scale group along K (g0: per channel)
//   act                     act order (static groups)  search=weighted|output, grid=N, min=F   scale search
//   order                   both column orders (natural, act), per row the one of least output error
//   bc                      bias correction        damp=F   percdamp       block=N   gptq block
//   lrdamp=F                percdamp of layers with fewer calibration rows than inputs (rows < K)
//   rescale                 least-squares rescale of each channel's scales after rounding
//   refine=N                coordinate descent on the codes after rounding, at most N sweeps (quant/gptq.h)
//   asym                    asymmetric target (fp32 network's inputs as reference, quant/gptq.h)
//   fl8                     first conv and classifier at int8 (per channel, same rounding)
//   dw8                     depthwise convs at int8 (an ablation: what the depthwise layers cost)
//   only=S                  round only the layers whose name contains S (the others keep fp32 weights)
//   layer=S                 round only the layer named S (the others keep fp32 weights)
//   dwx                     depthwise convs rounded exhaustively (floor / ceil patterns, quant/gptq.h)
//   seq                     sequential capture     waves=N  waves per capture pass (seq)
//   aq0                     capture fp32 inputs (default: the uint8-quantized inputs the layer receives)
//   pos=N                   conv output positions kept per calibration sample (default --max-positions)
// Several recipes: separated by ';'.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/autograd/node.h"
#include "core/error.h"
#include "core/threading.h"
#include "models/zoo.h"
#include "quant/fake_quant.h"
#include "quant/gptq_model.h"
#include "quant/task.h"
#include "tools/cli.h"

namespace mpq::cli {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

struct Recipe {
  std::string text;
  quant::ModelRoundingOptions opt;
  bool first_last_int8 = false;
  bool depthwise_int8 = false;
};

Recipe parse_recipe(const std::string& text, int64_t max_positions) {
  Recipe r;
  r.text = text;
  r.opt.capture.max_positions = max_positions;
  for (const std::string& tok : split(text, ',')) {
    const auto eq = tok.find('=');
    const std::string key = tok.substr(0, eq), val = eq == std::string::npos ? "" : tok.substr(eq + 1);
    quant::RoundingOptions& l = r.opt.layer;
    if (key == "nearest" || key == "gptq" || key == "exhaustive")
      l.rounding = quant::parse_rounding(key);
    else if (key.size() > 1 && key[0] == 'g' && std::isdigit(static_cast<unsigned char>(key[1])))
      l.group = std::stoll(key.substr(1));
    else if (key == "act")
      l.act_order = true;
    else if (key == "order")
      l.order_search = true;
    else if (key == "search")
      l.search = quant::parse_scale_search(val);
    else if (key == "grid")
      l.search_grid = std::stoi(val);
    else if (key == "min")
      l.search_min = std::stod(val);
    else if (key == "bc")
      l.bias_correction = true;
    else if (key == "damp")
      l.percdamp = std::stod(val);
    else if (key == "lrdamp")
      l.low_rank_damp = std::stod(val);
    else if (key == "block")
      l.block = std::stoll(val);
    else if (key == "refine")
      l.refine_passes = std::stoi(val);
    else if (key == "rescale")
      l.rescale = true;
    else if (key == "asym")
      l.asymmetric = true;
    else if (key == "fl8")
      r.first_last_int8 = true;
    else if (key == "dw8")
      r.depthwise_int8 = true;
    else if (key == "only")
      r.opt.only = [val](const models::QuantLayer& l) { return l.name.find(val) != std::string::npos; };
    else if (key == "layer")
      r.opt.only = [val](const models::QuantLayer& l) { return l.name == val; };
    else if (key == "dwx")
      r.opt.depthwise_exhaustive = true;
    else if (key == "seq")
      r.opt.sequential = true;
    else if (key == "waves")
      r.opt.waves_per_pass = std::stoi(val);
    else if (key == "aq0")
      r.opt.quantize_inputs = false;
    else if (key == "pos")
      r.opt.capture.max_positions = std::stoll(val);
    else if (key == "w8")
      l.bits = 8;
    else
      fail("gptq-exp: recipe '{}': token '{}' is unknown", text, tok);
  }
  return r;
}

int run_gptq_exp(const Args& args) {
  args.check_known({"model", "weights", "data", "calib", "act-calib", "test", "seed", "recipes", "max-positions",
                    "batch", "threads", "json", "skip-fp32", "rtn-check"});
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // line-buffered even into a file: a results log read while it runs
  const std::string model_name = args.require("model"), weights = args.require("weights");
  auto model = models::load_model(model_name, weights);
  quant::TaskOptions to;
  to.calib = args.get_int("calib", 128, 1, 1300);
  to.search = 0;
  to.test = args.get_int("test", 0, 0, 1 << 20);
  quant::Task task =
      quant::make_task(*model, weights, args.require("data"), to, uint64_t(args.get_int("seed", 0, 0, INT64_MAX)));
  quant::TaskEvaluator& ev = *task.ev;
  const auto& calib = task.splits.calib;
  const auto& test = task.splits.test;
  fmt::print("{}: {}; {} threads\n", model_name, task.split_note, num_threads());
  auto now = [] { return std::chrono::steady_clock::now(); };
  auto secs = [](auto t0) { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };

  std::ofstream json_out;
  if (args.has("json")) json_out.open(args.get("json"), std::ios::app);
  auto emit = [&](nlohmann::json j) {
    j["model"] = model_name;
    j["calib"] = calib.size();
    j["test"] = test.size();
    if (json_out) json_out << j.dump() << "\n", json_out.flush();
  };

  if (!args.flag("skip-fp32")) {
    const auto t0 = now();
    const quant::TaskResult f = ev.evaluate(*model, test);
    fmt::print("fp32: {:.2f} % ({} samples), loss {:.4f} ({:.0f} s)\n", 100 * f.metric, f.samples, f.loss, secs(t0));
    emit({{"recipe", "fp32"}, {"metric", f.metric}, {"loss", f.loss}});
  }
  const int64_t n_act = std::min<int64_t>(args.get_int("act-calib", 16, 1, 1300), int64_t(calib.size()));
  auto t0 = now();
  double c0 = quant::process_cpu_seconds();
  const quant::Calibration act = quant::calibrate(*model, ev, {calib.begin(), calib.begin() + n_act});
  const double act_seconds = secs(t0), act_cpu = quant::process_cpu_seconds() - c0;
  fmt::print("activation calibration on {} samples: {:.1f} s ({:.1f} CPU s)\n", n_act, act_seconds, act_cpu);

  std::vector<std::string> first_last;
  for (const auto& l : model->quant_layers())
    if (l.kind != models::LayerKind::attention_matmul && (l.producers.empty() || l.consumers.empty()))
      first_last.push_back(l.name);
  if (args.flag("rtn-check")) {  // the existing fake-quant path, to check the record's nearest rounding against it
    const std::vector<models::QuantLayer> names = model->quant_layers();
    quant::ScopedHook h(*model, std::make_shared<quant::FakeQuantHook>(quant::make_assignment(
                                    names, std::vector<Precision>(names.size(), Precision::int4), act)));
    const quant::TaskResult r = ev.evaluate(*model, test);
    fmt::print("FakeQuantHook int4 per channel (nearest): {:.2f} %, loss {:.4f}\n", 100 * r.metric, r.loss);
  }

  const std::vector<models::Batch> calib_batches = quant::task_batches(ev, calib, args.get_int("batch", 16, 1, 256));
  std::map<std::string, quant::CapturedLayers> cache;  // parallel captures by (positions, input quantization)
  for (const std::string& text : split(args.require("recipes"), ';')) {
    Recipe r = parse_recipe(text, args.get_int("max-positions", 0, 0, 1 << 20));
    if (r.first_last_int8) r.opt.int8_layers.insert(first_last.begin(), first_last.end());
    if (r.depthwise_int8)
      for (const auto& l : model->quant_layers())
        if (l.kind == models::LayerKind::depthwise_conv) r.opt.int8_layers.insert(l.name);
    const quant::CapturedLayers* cached = nullptr;
    const std::string key =
        fmt::format("{}/{}/{}", r.opt.capture.max_positions, r.opt.quantize_inputs, r.opt.layer.asymmetric);
    if (!r.opt.sequential) {
      if (!cache.count(key)) {
        auto inner = std::make_shared<quant::RoundedWeightsHook>(act, r.opt.quantize_inputs);
        const quant::CaptureReference ref{};  // the fp32 network
        cache[key] = quant::capture_layers(*model, calib_batches, quant::weight_layers(*model), inner, r.opt.capture,
                                           r.opt.max_capture_bytes, r.opt.layer.asymmetric ? &ref : nullptr);
        fmt::print("capture ({} positions, inputs {}{}): {:.1f} s ({:.1f} CPU s) in {} passes\n",
                   r.opt.capture.max_positions, r.opt.quantize_inputs ? "uint8" : "fp32",
                   r.opt.layer.asymmetric ? ", fp32 reference" : "", cache[key].seconds, cache[key].cpu_seconds,
                   cache[key].passes);
      }
      cached = &cache[key];
    }
    const quant::RoundedModel rm = quant::round_model(*model, calib_batches, act, r.opt, cached,
                                                      [](const std::string& s) { fmt::print(stderr, "  {}\n", s); });
    auto hook = std::make_shared<quant::RoundedWeightsHook>(act, true);
    for (const auto& [name, qw] : rm.weights) hook->set_weight(name, qw.dequantize(rm.shapes.at(name)));
    t0 = now();
    quant::TaskResult res;
    {
      quant::ScopedHook scope(*model, hook);
      res = ev.evaluate(*model, test);
    }
    const double eval_s = secs(t0);
    quant::restore_biases(*model, rm);
    double err_sum = 0;
    for (const auto& [n, e] : rm.output_error) err_sum += e;
    const double capture_s = cached ? cached->seconds : rm.capture_seconds;
    const double capture_cpu = cached ? cached->cpu_seconds : rm.capture_cpu_seconds;
    fmt::print(
        "[{}] top-1 {:.2f} % loss {:.4f} | capture {:.1f} s ({:.1f} CPU s, {} passes) rounding {:.1f} s ({:.1f} "
        "CPU s) eval {:.0f} s | sum of layer output errors {:.4g}\n",
        text, 100 * res.metric, res.loss, capture_s, capture_cpu, cached ? cached->passes : rm.passes,
        rm.rounding_seconds, rm.rounding_cpu_seconds, eval_s, err_sum);
    for (const std::string& n : rm.notes) fmt::print("    note: {}\n", n);
    nlohmann::json errs = rm.output_error;
    emit({{"recipe", text},
          {"metric", res.metric},
          {"loss", res.loss},
          {"capture_seconds", capture_s},
          {"capture_cpu_seconds", capture_cpu},
          {"rounding_seconds", rm.rounding_seconds},
          {"rounding_cpu_seconds", rm.rounding_cpu_seconds},
          {"act_calib_seconds", act_seconds},
          {"act_calib_cpu_seconds", act_cpu},
          {"passes", cached ? cached->passes : rm.passes},
          {"layer_output_error", errs}});
  }
  return 0;
}

const Registrar reg({"gptq-exp", "developer: weight-rounding experiments (uniform W4A8, recipes vs fp32)",
                     "mpq gptq-exp --model M --weights PATH --data DIR --recipes 'R1;R2;...' [--calib 128] "
                     "[--act-calib 16] [--test N] [--seed 0] [--max-positions P] [--batch 16] [--json FILE] "
                     "[--skip-fp32] [--rtn-check]\n"
                     "  recipe tokens (comma-separated): nearest|gptq g0|g32|g64|g128 act order search=weighted|output "
                     "grid=N min=F bc rescale refine=N asym damp=F lrdamp=F block=N fl8 dw8 dwx only=S layer=S seq "
                     "waves=N aq0 pos=N w8 (see "
                     "tools/cmd_gptq_exp.cpp)",
                     run_gptq_exp});

}  // namespace
}  // namespace mpq::cli
