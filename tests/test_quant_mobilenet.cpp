// Real-weight check of the fake-quant simulation: MobileNetV2 (TFLite weights dequantized to f32) on real
// ImageNet validation images. Calibration on 16 images, evaluation on 32 other images (seeded disjoint
// splits); uniform int8 (W8A8) must stay within 3 top-1 points of fp32, and uniform int4 (W4A8, per channel)
// must be worse than int8 (monotone sanity, on the mean cross-entropy which resolves finer than top-1).
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <limits>

#include "core/threading.h"
#include "models/cnn_common.h"
#include "models/zoo.h"
#include "quant/fake_quant.h"
#include "quant/splits.h"
#include "quant/task.h"

using namespace mpq;
using namespace mpq::quant;

TEST_CASE("mobilenetv2 real weights: uniform int8 within 3 top-1 points of fp32 on 32 images, int4 worse") {
  const std::string shared = MPQ_SHARED_DATA;
  auto model = models::load_model("mobilenetv2", shared + "/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite");
  auto* cnn = dynamic_cast<models::CnnModel*>(model.get());
  REQUIRE(cnn);
  const data::ImageNetFolder folder(shared + "/imagenet-val-1300");
  ImageTaskEvaluator ev(folder, cnn->preset(), 16);
  const Splits sp = make_splits(int64_t(folder.size()), 16, 32, 0, 0);
  const auto t0 = std::chrono::steady_clock::now();
  const Calibration cal = calibrate(*model, ev, sp.calib);
  std::vector<std::string> names;
  for (const auto& l : model->quant_layers()) names.push_back(l.name);
  REQUIRE(cal.size() == names.size());
  std::map<std::string, int> chosen;
  for (const auto& [layer, ops] : cal) ++chosen[observer_name(ops.at(0).chosen)];
  auto run = [&](Precision p) {
    if (p == Precision::fp32) return ev.evaluate(*model, sp.search);
    ScopedHook h(*model, std::make_shared<FakeQuantHook>(
                             make_assignment(model->quant_layers(), std::vector<Precision>(names.size(), p), cal, 0)));
    return ev.evaluate(*model, sp.search);
  };
  auto timed = [&](Precision p) {
    const auto ts = std::chrono::steady_clock::now();
    const TaskResult r = run(p);
    MESSAGE(fmt::format("{}: {:.1f} s", precision_name(p),
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count()));
    return r;
  };
  MESSAGE(fmt::format("calibration: {:.1f} s",
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()));
  const TaskResult f32 = timed(Precision::fp32), f16 = timed(Precision::fp16), i8 = timed(Precision::int8),
                   i4 = timed(Precision::int4);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE(
      fmt::format("mobilenetv2 32 images: top-1 fp32 {:.2f}% fp16 {:.2f}% int8 {:.2f}% int4 {:.2f}%; mean CE "
                  "{:.4f} / {:.4f} / {:.4f} / {:.4f}; observers chosen minmax {} percentile {} mse {}; {:.1f} s "
                  "on {} threads",
                  100 * f32.metric, 100 * f16.metric, 100 * i8.metric, 100 * i4.metric, f32.loss, f16.loss, i8.loss,
                  i4.loss, chosen["minmax"], chosen["percentile"], chosen["mse"], secs, num_threads()));
  CHECK(f32.samples == 32);
  CHECK(f32.metric - i8.metric < 0.03);
  CHECK(std::abs(f32.metric - f16.metric) <= 1.0 / 32 + 1e-9);
  CHECK(i4.loss > i8.loss);
  CHECK(i4.metric <= i8.metric);
}

TEST_CASE("mobilenetv2 with one NaN weight: every image a miss, counted as non-finite (no longer 100 % top-1)") {
  const std::string shared = MPQ_SHARED_DATA;
  auto model = models::load_model("mobilenetv2", shared + "/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite");
  auto* cnn = dynamic_cast<models::CnnModel*>(model.get());
  REQUIRE(cnn);
  const auto layers = model->quant_layers();
  for (auto& [name, t] : model->named_tensors())
    if (name == layers.back().weight) t->data<float>()[0] = std::numeric_limits<float>::quiet_NaN();
  const data::ImageNetFolder folder(shared + "/imagenet-val-1300");
  ImageTaskEvaluator ev(folder, cnn->preset(), 4);
  const TaskResult r = ev.evaluate(*model, {0, 1, 2, 3});
  CHECK(r.samples == 4);
  CHECK(r.nonfinite == 4);
  CHECK(r.metric == 0.0);
  CHECK(r.hits == "0000");
}
