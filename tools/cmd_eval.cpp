// `mpq eval`: top-1 / top-5 accuracy and mean cross-entropy of a model over an ImageNet folder
// (labels.txt + images/). Preprocessing follows the weights' layout (Keras ResNet50: Caffe BGR mean
// subtraction; TFLite MobileNetV2: (x - 128) / 128 RGB and labels + 1; torchvision: ImageNet mean/std).
// BERT is handed to eval_bert (tools/cmd_bert.cpp).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/threading.h"
#include "models/cnn_common.h"
#include "models/data/imagenet.h"
#include "models/zoo.h"
#include "quant/evaluate.h"
#include "tools/commands.h"

namespace mpq::cli {
namespace {

void check_precision(const Args& args) {
  const std::string prec = args.get("precision", "fp32");
  check(prec == "fp32", "--precision '{}' is not yet supported (only fp32)", prec);
}

int run_eval(const Args& args) {
  if (args.require("model") == "bert") return eval_bert(args);
  args.check_known({"model", "weights", "data", "limit", "batch", "threads", "json", "precision", "no-fold-bn"});
  check_precision(args);
  const std::string model_name = args.require("model"), weights = args.require("weights");
  const auto t0 = std::chrono::steady_clock::now();
  auto model = models::load_model(model_name, weights);
  auto* cnn = dynamic_cast<models::CnnModel*>(model.get());
  check(cnn != nullptr, "eval: model '{}' is not an image classifier", model_name);
  cnn->set_fold_bn(!args.flag("no-fold-bn"));
  const data::ImageNetFolder folder(args.require("data"));
  const int64_t limit = args.get_int("limit", 0);
  const int64_t total = limit > 0 ? std::min<int64_t>(limit, int64_t(folder.size())) : int64_t(folder.size());
  const int64_t bs = args.get_int("batch", 16);
  check(bs > 0, "--batch must be positive, got {}", bs);
  const bool json = args.flag("json");

  std::vector<int64_t> indices(static_cast<size_t>(total));
  for (int64_t i = 0; i < total; ++i) indices[size_t(i)] = i;
  const auto start = std::chrono::steady_clock::now();
  const quant::EvalTotals t =
      quant::evaluate_images(*cnn, folder, indices, bs, [&](int64_t done, int64_t all, const quant::EvalTotals& r) {
        const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double ips = double(done) / std::max(el, 1e-9);
        fmt::print(stderr, "\r[eval {}] {}/{} images  {:.1f} img/s  top1 {:.2f}%  ETA {:.0f} s   ", model_name, done,
                   all, ips, 100.0 * r.top1_frac(), double(all - done) / ips);
      });
  fmt::print(stderr, "\n");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double top1 = t.top1_frac(), top5 = t.top5_frac(), loss = t.mean_loss();
  if (json) {
    nlohmann::json j = {{"model", model_name},
                        {"weights", weights},
                        {"layout", cnn->layout()},
                        {"samples", t.samples},
                        {"top1", top1},
                        {"top5", top5},
                        {"top1_pct", 100 * top1},
                        {"top5_pct", 100 * top5},
                        {"loss", loss},
                        {"seconds", seconds},
                        {"batch", bs},
                        {"threads", num_threads()},
                        {"precision", "fp32"}};
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("model {} ({} layout), {} samples: top-1 {:.2f}%  top-5 {:.2f}%  loss {:.4f}  ({:.1f} s)\n", model_name,
               cnn->layout(), t.samples, 100 * top1, 100 * top5, loss, seconds);
  }
  return 0;
}

const Registrar reg(
    {"eval", "top-1/top-5 accuracy and loss over an ImageNet folder (or SST-2 for bert)",
     "mpq eval --model {resnet50,mobilenetv2,bert} --weights PATH --data DIR [--limit N] [--batch B=16] "
     "[--threads N] [--json] [--precision fp32] [--no-fold-bn]\n"
     "  --json prints one object: model, weights, layout, samples, top1, top5 (fractions 0..1), "
     "top1_pct, top5_pct, loss (mean CE), seconds, batch, threads, precision",
     run_eval});

}  // namespace
}  // namespace mpq::cli
