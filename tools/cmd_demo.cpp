// `mpq demo`: the README's main job on an embedded default, until the search lands. On the real ImageNet
// MobileNetV2 (TFLite, dequantized to f32) and the real validation images it
//   1. measures FP32 top-1 / top-5 over the evaluation images;
//   2. estimates every quantizable layer's Hessian trace by Hutchinson on exact HVPs (one HVP per draw
//      for all layers) on a seeded calibration sample of the images (the evaluation covers all images, so
//      its figure equals `mpq eval`'s; the search keeps calibration and test splits disjoint);
//   3. ranks layers by the HAWQ-V2 sensitivity Omega_i(p) = Tr(H_i) / n_i * ||Q_p(W_i) - W_i||^2 for
//      p = fp16, int8, int4 (per-channel symmetric weights).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <random>

#include "core/autograd/node.h"
#include "core/error.h"
#include "core/threading.h"
#include "models/cnn_common.h"
#include "models/zoo.h"
#include "ops/ops.h"
#include "quant/evaluate.h"
#include "quant/hessian.h"
#include "quant/quantizer.h"
#include "tools/cli.h"

namespace mpq::cli {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

int run_demo(const Args& args) {
  args.check_known({"data", "weights", "limit", "calib", "draws", "seed", "threads", "json", "batch"});
  const std::string shared = MPQ_DEFAULT_DATA;
  const std::string data_dir = args.get("data", shared + "/imagenet-val-1300");
  const std::string weights = args.get("weights", shared + "/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite");
  const int64_t calib_n = args.get_int("calib", 8), draws = args.get_int("draws", 32);
  const uint64_t seed = uint64_t(args.get_int("seed", 0));
  check(calib_n > 0 && draws > 0, "--calib and --draws must be positive");
  const bool json = args.flag("json");
  const auto t0 = std::chrono::steady_clock::now();

  auto model = models::load_model("mobilenetv2", weights);
  auto* cnn = dynamic_cast<models::CnnModel*>(model.get());
  const data::ImageNetFolder folder(data_dir);
  const int64_t limit = args.get_int("limit", 0);
  const int64_t total = limit > 0 ? std::min<int64_t>(limit, int64_t(folder.size())) : int64_t(folder.size());

  // 1. FP32 accuracy
  std::vector<int64_t> all(static_cast<size_t>(total));
  for (int64_t i = 0; i < total; ++i) all[size_t(i)] = i;
  const auto te = std::chrono::steady_clock::now();
  const quant::EvalTotals acc = quant::evaluate_images(
      *cnn, folder, all, args.get_int("batch", 16), [&](int64_t done, int64_t n, const quant::EvalTotals& r) {
        const double ips = double(done) / std::max(seconds_since(te), 1e-9);
        fmt::print(stderr, "\r[1/2 fp32 eval] {}/{} images  top1 {:.2f}%  {:.1f} img/s  ETA {:.0f} s   ", done, n,
                   100 * r.top1_frac(), ips, double(n - done) / ips);
      });
  fmt::print(stderr, "\n");

  // 2. Hutchinson traces on a seeded calibration batch
  std::vector<int64_t> pick(folder.size());
  for (size_t i = 0; i < pick.size(); ++i) pick[i] = int64_t(i);
  std::mt19937_64 rng(seed);
  std::shuffle(pick.begin(), pick.end(), rng);
  pick.resize(size_t(std::min<int64_t>(calib_n, int64_t(pick.size()))));
  data::ImageBatch calib = folder.load_batch(pick, cnn->preset());
  const auto layers = model->quant_layers();
  std::map<std::string, Tensor*> by_name;
  for (auto& [name, t] : model->named_tensors()) by_name[name] = t;
  std::vector<Tensor> weights_t;
  for (const auto& l : layers) {
    check(by_name.count(l.weight), "demo: layer {} names weight {} that the model does not have", l.name, l.weight);
    by_name[l.weight]->set_requires_grad(true);
    weights_t.push_back(*by_name[l.weight]);
  }
  const auto th = std::chrono::steady_clock::now();
  models::Batch mb;
  mb.images = calib.images;  // [calib, 3, 224, 224]
  const Tensor loss = ops::cross_entropy(model->forward(mb, false), {calib.labels.begin(), calib.labels.end()});
  quant::HutchinsonOptions ho;
  ho.rel_tol = 1e-2;
  ho.max_draws = int(draws);
  ho.seed = seed;
  ho.progress = [&](int d, double move) {
    fmt::print(stderr, "\r[2/2 hessian] draw {}/{}  largest relative move {:.2e}  {:.1f} s/draw   ", d, draws, move,
               seconds_since(th) / d);
  };
  const quant::HutchinsonResult hr = quant::hutchinson_traces(loss, weights_t, ho);
  fmt::print(stderr, "\n");

  // 3. sensitivities
  struct Row {
    std::string name;
    int64_t n;
    double trace, se, omega16, omega8, omega4;
  };
  std::vector<Row> rows;
  for (size_t i = 0; i < layers.size(); ++i) {
    const Tensor& w = weights_t[i];
    const double per = hr.trace[i] / double(w.numel());
    rows.push_back({layers[i].name, w.numel(), hr.trace[i], hr.std_error[i],
                    per * quant::quant_error_sq(w, quant::fake_quant_f16(w)),
                    per * quant::quant_error_sq(w, quant::fake_quant_weight(w, {8, 0})),
                    per * quant::quant_error_sq(w, quant::fake_quant_weight(w, {4, 0}))});
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.omega8 > b.omega8; });
  const double secs = seconds_since(t0);
  if (json) {
    nlohmann::json j = {{"model", "mobilenetv2"},  {"weights", weights},           {"samples", acc.samples},
                        {"top1", acc.top1_frac()}, {"top5", acc.top5_frac()},      {"loss", acc.mean_loss()},
                        {"calib_images", calib_n}, {"hutchinson_draws", hr.draws}, {"converged", hr.converged},
                        {"seconds", secs},         {"threads", num_threads()}};
    for (const auto& r : rows)
      j["layers"].push_back({{"name", r.name},
                             {"params", r.n},
                             {"trace", r.trace},
                             {"trace_stderr", r.se},
                             {"omega_fp16", r.omega16},
                             {"omega_int8", r.omega8},
                             {"omega_int4", r.omega4}});
    fmt::print("{}\n", j.dump());
    return 0;
  }
  fmt::print("MobileNetV2 (real ImageNet weights, TFLite dequantized to f32) on {} real validation images:\n",
             acc.samples);
  fmt::print("  FP32 top-1 {:.2f}%  top-5 {:.2f}%  mean CE {:.4f}\n\n", 100 * acc.top1_frac(), 100 * acc.top5_frac(),
             acc.mean_loss());
  fmt::print("Hessian traces: Hutchinson, {} draws ({}), calibration batch of {} images (seed {})\n", hr.draws,
             hr.converged ? "converged to 1e-2 relative" : "stopped at the cap", calib_n, seed);
  fmt::print("Sensitivity Omega(p) = Tr(H)/n * ||Q_p(W) - W||^2, most sensitive first at int8:\n");
  fmt::print("  {:<28} {:>9} {:>12} {:>10} {:>11} {:>11} {:>11}\n", "layer", "params", "Tr(H)", "+-se", "fp16", "int8",
             "int4");
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i == 10 && rows.size() > 15) {
      fmt::print("  ... {} more ...\n", rows.size() - 15);
      i = rows.size() - 5;
    }
    const Row& r = rows[i];
    fmt::print("  {:<28} {:>9} {:>12.4e} {:>10.2e} {:>11.3e} {:>11.3e} {:>11.3e}\n", r.name, r.n, r.trace, r.se,
               r.omega16, r.omega8, r.omega4);
  }
  fmt::print("\nwall time {:.1f} s on {} threads\n", secs, num_threads());
  return 0;
}

const Registrar reg({"demo", "real-weight FP32 accuracy + per-layer Hessian sensitivities (MobileNetV2)",
                     "mpq demo [--data DIR] [--weights TFLITE] [--limit N] [--calib N=8] [--draws N=32] "
                     "[--seed S] [--threads N] [--json]",
                     run_demo});

}  // namespace
}  // namespace mpq::cli
