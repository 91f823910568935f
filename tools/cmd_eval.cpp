// `mpq eval`: top-1 / top-5 accuracy and mean cross-entropy of a model over an ImageNet folder
// (labels.txt + images/). Preprocessing follows the weights' layout (Keras ResNet50: Caffe BGR mean
// subtraction; TFLite MobileNetV2: (x - 128) / 128 RGB and labels + 1; torchvision: ImageNet mean/std).
// BERT is handed to eval_bert (tools/cmd_bert.cpp).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/threading.h"
#include "deploy/model_file.h"
#include "models/cnn_common.h"
#include "models/data/imagenet.h"
#include "models/zoo.h"
#include "quant/evaluate.h"
#include "tools/commands.h"
#include "tools/native_run.h"
#include "tools/progress.h"

namespace mpq::cli {
namespace {

int run_eval(const Args& args) {
  deploy::LoadedModel file;  // --model-file: the deployed model, run by the native engine
  if (args.has("model-file")) {
    args.check_known({"model", "model-file", "data", "split", "limit", "batch", "threads", "json"});
    file = deploy::load_model_file(args.get("model-file"));  // our kernels only: the same figure every run
    check(!args.has("model") || args.get("model") == file.info.model, "--model {} but '{}' holds {}", args.get("model"),
          args.get("model-file"), file.info.model);
    if (file.info.model == "bert") return eval_bert(args, &file);
  } else if (args.require("model") == "bert") {
    return eval_bert(args, nullptr);
  }
  args.check_known({"model", "weights", "model-file", "data", "limit", "batch", "threads", "json", "precision",
                    "config", "int4-group", "calib", "calib-data", "rounding", "rounding-calib", "no-fold-bn"});
  const bool native_run = args.has("precision") || args.has("config");
  const std::string model_name = file.model ? file.info.model : args.require("model");
  const std::string weights = file.model ? file.info.path : args.require("weights");
  const int64_t limit = args.get_int("limit", 0, 0, INT32_MAX);  // 0: all
  const int64_t bs = args.get_int("batch", 16, 1, 65536);
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<models::Model> model;
  data::Preset preset{};
  std::string layout;
  if (file.model) {
    preset = data::parse_preset(file.info.preprocessing);
    layout = file.info.layout;
  } else {
    model = models::load_model(model_name, weights);
    auto* cnn = dynamic_cast<models::CnnModel*>(model.get());
    check(cnn != nullptr, "eval: model '{}' is not an image classifier", model_name);
    cnn->set_fold_bn(!args.flag("no-fold-bn"));
    preset = cnn->preset();
    layout = cnn->layout();
  }
  const data::ImageNetFolder folder(args.require("data"));
  const int64_t total = limit > 0 ? std::min<int64_t>(limit, int64_t(folder.size())) : int64_t(folder.size());
  const bool json = args.flag("json");

  std::vector<int64_t> indices(static_cast<size_t>(total));
  for (int64_t i = 0; i < total; ++i) indices[size_t(i)] = i;
  std::string label = file.model ? "model file, " + file.info.precision_summary() : "fp32";
  std::unique_ptr<native::CompiledModel> nm;  // the native executor, when a precision or config is asked
  if (native_run) {
    const Assignment a = requested_assignment(args, *model, models::Batch{}, label);
    nm = std::make_unique<native::CompiledModel>(*model,
                                                 native::compile(*model, a, native::CompileOptions::reproducible()));
  }
  const auto start = std::chrono::steady_clock::now();
  Progress bar(fmt::format("eval {} {}", model_name, label), int64_t(indices.size()));
  const auto progress = [&](int64_t done, int64_t all, const quant::EvalTotals& r) {
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    bar.update(done,
               fmt::format("{:.1f} img/s  top1 {:.2f}%", double(done) / std::max(el, 1e-9), 100.0 * r.top1_frac()));
  };
  models::Model& runner = file.model ? static_cast<models::Model&>(*file.model)
                          : nm       ? static_cast<models::Model&>(*nm)
                                     : *model;
  const quant::EvalTotals t = quant::evaluate_images(runner, preset, folder, indices, bs, progress);
  bar.finish();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double top1 = t.top1_frac(), top5 = t.top5_frac(), loss = t.mean_loss();
  if (json) {
    nlohmann::json j = {{"model", model_name},
                        {"weights", weights},
                        {"layout", layout},
                        {"samples", t.samples},
                        {"top1_pct", 100 * top1},
                        {"top5_pct", 100 * top5},
                        {"nonfinite_samples", t.nonfinite},
                        {"loss", loss},
                        {"seconds", seconds},
                        {"batch", bs},
                        {"threads", num_threads()},
                        {"precision", label},
                        {"engine", nm || file.model ? "native" : "autograd"}};
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("model {} ({} layout, {}), {} samples: top-1 {:.2f}%  top-5 {:.2f}%  loss {:.4f}  ({:.1f} s)\n",
               model_name, layout, label, t.samples, 100 * top1, 100 * top5, loss, seconds);
  }
  if (t.nonfinite > 0) {
    fmt::print(stderr, "mpq eval: warning: {} of {} samples produced non-finite logits (counted as misses)\n",
               t.nonfinite, t.samples);
  }
  return 0;
}

const Registrar reg(
    {"eval", "top-1/top-5 accuracy and loss over an ImageNet folder (or SST-2 for bert)",
     "mpq eval (--model {resnet50,mobilenetv2,bert} --weights PATH [--precision P | --config FILE] [--int4-group G] "
     "[--calib 8] [--calib-data DIR] [--no-fold-bn] | --model-file MODEL.mpq) --data DIR [--limit N] [--batch B=16] "
     "[--threads N] [--json]\n"
     "  --model-file: a deployed model (mpq export) on the native engine, preprocessing (and BERT's vocabulary) "
     "from the file\n"
     "  --precision / --config run the native per-layer-precision executor (our kernels, not autotuned; "
     "int8 / int4 via --precision calibrate on --calib images of --calib-data); without them the fp32 "
     "autograd forward runs\n"
     "  --json prints one object: model, weights, layout, samples, top1_pct, top5_pct (percent), "
     "nonfinite_samples (logits with a NaN / infinity: misses), loss (mean CE over the finite samples), seconds, "
     "batch, threads, precision, engine",
     run_eval});

}  // namespace
}  // namespace mpq::cli
