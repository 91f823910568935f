// `mpq bench`: end-to-end batch-1 inference latency of a model, median / min / max over repeated warm runs,
// plus the weights' memory footprint. Without --weights the network gets deterministic formula / HF-style
// random weights (speed only): torchvision ResNet50, torchvision MobileNetV2, BERT-base (12/768/12/3072,
// vocab 30522) at --seq tokens.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "core/autograd/node.h"
#include "core/error.h"
#include "core/threading.h"
#include "models/bert.h"
#include "models/mobilenetv2.h"
#include "models/resnet50.h"
#include "models/zoo.h"
#include "tools/cli.h"

namespace mpq::cli {
namespace {

std::unique_ptr<models::Model> make_default(const std::string& name) {
  if (name == "resnet50" || name == "mobilenetv2") {
    std::unique_ptr<models::CnnModel> m = name == "resnet50"
                                              ? models::make_resnet50(models::ResNetLayout::torchvision)
                                              : models::make_mobilenetv2(models::MobileNetLayout::torchvision);
    models::formula_init(*m);
    return m;
  }
  if (name == "bert") {
    models::BertConfig c;
    c.vocab_size = 30522;
    c.hidden = 768;
    c.layers = 12;
    c.heads = 12;
    c.ffn = 3072;
    auto m = std::make_unique<models::Bert>(c);
    m->init_random(0);
    return m;
  }
  fail("unknown model '{}' (expected resnet50, mobilenetv2 or bert)", name);
}

int run_bench(const Args& args) {
  args.check_known({"model", "weights", "precision", "config", "threads", "runs", "warmup", "seq", "json"});
  const std::string name = args.require("model");
  const std::string prec = args.get("precision", "fp32");
  check(prec == "fp32", "--precision '{}' is not yet supported by bench (only fp32; the kernels issue adds the rest)",
        prec);
  check(!args.has("config"), "--config is not yet supported by bench (the kernels issue adds per-layer execution)");
  const int runs = args.get_int("runs", 30), warmup = args.get_int("warmup", 3);
  check(runs > 0 && warmup >= 0, "--runs must be positive and --warmup non-negative");
  auto model = args.has("weights") ? models::load_model(name, args.get("weights")) : make_default(name);

  models::Batch batch;
  if (dynamic_cast<models::CnnModel*>(model.get()) != nullptr) {
    batch.images = models::formula_input(1, 224, 224);  // [1, 3, 224, 224]
  } else {
    const int64_t L = args.get_int("seq", 128);
    check(L > 0, "--seq must be positive, got {}", L);
    batch.seq_len = L;
    for (int64_t i = 0; i < L; ++i) {
      batch.ids.push_back(int32_t(i == 0 ? 2 : 5 + (i * 7919) % 1000));  // [1, L], no padding
      batch.mask.push_back(1);
    }
  }
  int64_t weight_bytes = 0;
  for (auto& [n, t] : model->named_tensors()) weight_bytes += int64_t(t->nbytes());

  autograd::NoGradGuard no_grad;
  for (int i = 0; i < warmup; ++i) model->forward(batch, false);
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const Tensor out = model->forward(batch, false);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  const double median = ms.size() % 2 ? ms[ms.size() / 2] : 0.5 * (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]);
  if (args.flag("json")) {
    nlohmann::json j = {
        {"model", name},       {"precision", prec},    {"threads", num_threads()}, {"runs", runs},
        {"median_ms", median}, {"min_ms", ms.front()}, {"max_ms", ms.back()},      {"weight_bytes", weight_bytes},
        {"batch", 1}};
    if (batch.seq_len) j["seq"] = batch.seq_len;
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("{} {} batch 1{}: median {:.2f} ms  min {:.2f}  max {:.2f}  ({} runs, {} threads), weights {:.1f} MB\n",
               name, prec, batch.seq_len ? fmt::format(" seq {}", batch.seq_len) : "", median, ms.front(), ms.back(),
               runs, num_threads(), double(weight_bytes) / 1e6);
  }
  return 0;
}

const Registrar reg({"bench", "end-to-end batch-1 latency (median/min/max) and weight bytes",
                     "mpq bench --model {resnet50,mobilenetv2,bert} [--weights PATH] [--precision fp32] "
                     "[--runs 30] [--warmup 3] [--seq 128] [--threads N] [--json]",
                     run_bench});

}  // namespace
}  // namespace mpq::cli
