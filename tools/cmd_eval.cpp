// `mpq eval`: top-1 / top-5 accuracy and mean cross-entropy of a model over an ImageNet folder
// (labels.txt + images/). Preprocessing follows the weights' layout (Keras ResNet50: Caffe BGR mean
// subtraction; TFLite MobileNetV2: (x - 128) / 128 RGB and labels + 1; torchvision: ImageNet mean/std).
// BERT is handed to eval_bert (tools/cmd_bert.cpp).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/autograd/node.h"
#include "core/error.h"
#include "core/threading.h"
#include "models/cnn_common.h"
#include "models/data/imagenet.h"
#include "models/zoo.h"
#include "tools/commands.h"

namespace mpq::cli {
namespace {

struct EvalTotals {
  int64_t samples = 0, top1 = 0, top5 = 0;
  double loss_sum = 0;  // sum of per-sample cross-entropy (natural log)
};

// logits [N, C] (contiguous f32), labels [N]
void score(const Tensor& logits, const std::vector<int>& labels, EvalTotals& t) {
  const int64_t n = logits.size(0), c = logits.size(1);
  const float* p = logits.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const float* row = p + i * c;  // [C]
    const int label = labels[size_t(i)];
    check(label >= 0 && label < c, "eval: label {} out of range for {} model outputs", label, c);
    const float target = row[label];
    int64_t greater = 0;
    double mx = row[0];
    for (int64_t j = 0; j < c; ++j) {
      greater += row[j] > target;
      mx = std::max(mx, double(row[j]));
    }
    double se = 0;
    for (int64_t j = 0; j < c; ++j) se += std::exp(double(row[j]) - mx);
    t.loss_sum += mx + std::log(se) - double(target);
    t.top1 += greater == 0;
    t.top5 += greater < 5;
    ++t.samples;
  }
}

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

  autograd::NoGradGuard no_grad;
  EvalTotals t;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t b = 0; b < total; b += bs) {
    const int64_t count = std::min(bs, total - b);
    data::ImageBatch ib = folder.load_range(b, count, cnn->preset());
    models::Batch batch;
    batch.images = ib.images;  // [count, 3, 224, 224]
    const Tensor logits = model->forward(batch, false).contiguous();  // [count, classes]
    score(logits, ib.labels, t);
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double ips = double(t.samples) / std::max(el, 1e-9);
    fmt::print(stderr, "\r[eval {}] {}/{} images  {:.1f} img/s  top1 {:.2f}%  ETA {:.0f} s   ", model_name, t.samples,
               total, ips, 100.0 * double(t.top1) / double(t.samples), double(total - t.samples) / ips);
  }
  fmt::print(stderr, "\n");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double n = double(std::max<int64_t>(t.samples, 1));
  const double top1 = double(t.top1) / n, top5 = double(t.top5) / n, loss = t.loss_sum / n;
  if (json) {
    nlohmann::json j = {{"model", model_name},   {"weights", weights},         {"layout", cnn->layout()},
                        {"samples", t.samples},  {"top1", top1},               {"top5", top5},
                        {"top1_pct", 100 * top1}, {"top5_pct", 100 * top5},    {"loss", loss},
                        {"seconds", seconds},    {"batch", bs},                {"threads", num_threads()},
                        {"precision", "fp32"}};
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("model {} ({} layout), {} samples: top-1 {:.2f}%  top-5 {:.2f}%  loss {:.4f}  ({:.1f} s)\n", model_name,
               cnn->layout(), t.samples, 100 * top1, 100 * top5, loss, seconds);
  }
  return 0;
}

const Registrar reg({"eval", "top-1/top-5 accuracy and loss over an ImageNet folder (or SST-2 for bert)",
                     "mpq eval --model {resnet50,mobilenetv2,bert} --weights PATH --data DIR [--limit N] [--batch B=16] "
                     "[--threads N] [--json] [--precision fp32] [--no-fold-bn]\n"
                     "  --json prints one object: model, weights, layout, samples, top1, top5 (fractions 0..1), "
                     "top1_pct, top5_pct, loss (mean CE), seconds, batch, threads, precision",
                     run_eval});

}  // namespace
}  // namespace mpq::cli
