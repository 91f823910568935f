// Activation observers and the fake-quant hook: exact values on known data, the CNN hook wiring, and a
// tiny CNN whose hooked forward must equal a hand-written quantize-dequantize forward.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>

#include "core/autograd/node.h"
#include "core/error.h"
#include "models/cnn_common.h"
#include "models/mobilenetv2.h"
#include "models/resnet50.h"
#include "ops/fold_bn.h"
#include "ops/ops.h"
#include "quant/fake_quant.h"
#include "quant/observers.h"
#include "quant/quantizer.h"
#include "quant/splits.h"

using namespace mpq;
using namespace mpq::quant;

namespace {
ActivationStats stats_of(const std::vector<float>& v) {
  ActivationStats st;
  st.sample = v;
  st.channel.assign(v.size(), -1);
  st.min = *std::min_element(v.begin(), v.end());
  st.max = *std::max_element(v.begin(), v.end());
  st.seen = int64_t(v.size());
  st.channels = 1;
  return st;
}
}  // namespace

TEST_CASE("observers: min-max uint8 scale / zero point exact, round half to even, clamp") {
  const ActQuantParams p = observe(stats_of({-1.0f, 0.5f, 3.0f}), ObserverKind::minmax);
  CHECK(p.scale == doctest::Approx(4.0 / 255.0).epsilon(1e-7));
  CHECK(p.zero_point == 64);  // nearbyint(1 / (4/255)) = nearbyint(63.75) = 64
  // range widened to contain 0
  const ActQuantParams q = act_params_from_range(2.0f, 4.0f);
  CHECK(q.zero_point == 0);
  CHECK(q.scale == doctest::Approx(4.0 / 255.0));
  // scale 1, zp 10: 2.5 -> 2 (ties to even), 3.5 -> 4, -20 clamps to q = 0 -> -10, 300 clamps to 245
  ActQuantParams u;
  u.scale = 1.0f, u.zero_point = 10;
  const Tensor y = fake_quant_act(Tensor::from_vector({4}, {2.5f, 3.5f, -20.0f, 300.0f}), u);
  CHECK(y.flat(0) == 2.0f);
  CHECK(y.flat(1) == 4.0f);
  CHECK(y.flat(2) == -10.0f);
  CHECK(y.flat(3) == 245.0f);
}

TEST_CASE("observers: percentile clips an outlier, MSE picks a smaller clip on heavy-tailed data") {
  std::vector<float> v;
  for (int i = 0; i <= 100000; ++i) v.push_back(float(i) / 100000.0f);  // uniform [0, 1]
  v.push_back(1000.0f);                                                 // one outlier
  const ActivationStats st = stats_of(v);
  const ActQuantParams mm = observe(st, ObserverKind::minmax);
  const ActQuantParams pc = observe(st, ObserverKind::percentile);  // 99.99 %
  CHECK(mm.hi == 1000.0f);
  CHECK(pc.hi == doctest::Approx(0.9999).epsilon(1e-3));
  CHECK(pc.lo == 0.0f);
  // heavy tail: Laplace(0, 1), x = sign * -ln(u); 200000 draws reach |x| ~ 12, while the 8-bit MSE-optimal
  // clip of a Laplace is ~9.9 (Banner et al. 2019)
  std::vector<float> t;
  uint64_t s = 7;
  for (int i = 0; i < 200000; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const double u = (double(s >> 11) + 0.5) / double(1ull << 53);
    t.push_back(float((i % 2 ? 1 : -1) * -std::log(u)));
  }
  const ActivationStats ht = stats_of(t);
  const ActQuantParams a = observe(ht, ObserverKind::minmax), b = observe(ht, ObserverKind::mse);
  MESSAGE("laplace: minmax hi " << a.hi << ", mse hi " << b.hi);
  CHECK(b.hi < 0.95 * a.hi);
  CHECK(weighted_quant_error(ht, b, {}) < weighted_quant_error(ht, a, {}));
  // the fast F16C rounding equals the reference conversion, ties included
  std::vector<float> hv = {1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 65504.0f, 70000.0f, -3.14159f, 1e-8f, 0.0f};
  for (int i = 0; i < 100; ++i) hv.push_back(float(std::sin(i * 1.7) * std::pow(10.0, i % 9 - 4)));
  const Tensor ht16 = Tensor::from_vector({int64_t(hv.size())}, hv);
  CHECK(round_to_f16(ht16).to_vector() == fake_quant_f16(ht16).to_vector());
  CHECK_THROWS_WITH_AS(parse_observer("median"), doctest::Contains("'median'"), Error);
}

TEST_CASE("observers: input channel weights of conv, depthwise and linear") {
  // conv [O=2, C=2, 1, 1]: ||W_c||^2 = sum over outputs
  auto cw = input_channel_weights(Tensor::from_vector({2, 2, 1, 1}, {1, 2, 3, 4}), 2);
  CHECK(cw == std::vector<double>{10, 20});
  // depthwise [C=2, 1, 1, 2]: channel c read only by output c
  cw = input_channel_weights(Tensor::from_vector({2, 1, 1, 2}, {1, 1, 2, 0}), 2);
  CHECK(cw == std::vector<double>{2, 4});
  cw = input_channel_weights(Tensor::from_vector({1, 3}, {1, -2, 0}), 3);
  CHECK(cw == std::vector<double>{1, 4, 0});
}

namespace {
// conv 3->4 (3x3, BN) -> relu -> global average pool -> linear 4->3; wired like the real CNNs.
class TinyCnn final : public models::CnnModel {
 public:
  TinyCnn() : conv_(models::ConvSpec{"conv", "bn", 3, 4, 3, 1, 1, false}), fc_("fc", 4, 3) {
    models::formula_init(*this);
  }
  std::string name() const override { return "tiny"; }
  std::string layout() const override { return "torchvision"; }
  data::Preset preset() const override { return data::Preset::Torchvision; }
  int64_t num_classes() const override { return 3; }
  Tensor forward(const models::Batch& b, bool training) override {
    const bool fold = fold_now(training);
    return fc_.forward(ops::global_avg_pool(ops::relu(conv_.forward(b.images, training, fold))));
  }
  models::NamedTensors named_tensors() override {
    models::NamedTensors o;
    conv_.collect(o, false);
    fc_.collect(o, false);
    return o;
  }
  models::NamedTensors parameters() override {
    models::NamedTensors o;
    conv_.collect(o, true);
    fc_.collect(o, true);
    return o;
  }
  std::vector<models::QuantLayer> quant_layers() const override {
    models::QuantGraph g;
    g.add("conv", models::LayerKind::conv, "conv.weight", 4 * 27 * 64, {});
    g.add("fc", models::LayerKind::linear, "fc.weight", 12, {"conv"});
    return g.finish();
  }
  models::ConvUnit conv_;
  models::LinearUnit fc_;
};
}  // namespace

TEST_CASE("fake-quant hook on a tiny CNN equals manual quantize-dequantize (int8 conv, int4/g2 fc, fp16)") {
  TinyCnn m;
  autograd::NoGradGuard ng;
  models::Batch b;
  b.images = models::formula_input(2, 8, 8);  // [2, 3, 8, 8]
  ActQuantParams p0 = act_params_from_range(-1.5f, 1.5f), p1 = act_params_from_range(0.0f, 2.0f);
  Assignment a;
  a["conv"] = LayerQuant{Precision::int8, 0, {{0, p0}}, nullptr};
  a["fc"] = LayerQuant{Precision::int4, 2, {{0, p1}}, nullptr};
  m.set_layer_hook(std::make_shared<FakeQuantHook>(a));
  const Tensor got = m.forward(b, false);  // [2, 3]
  // by hand
  const ops::FoldedConv f = ops::fold_bn(m.conv_.weight, Tensor(), m.conv_.gamma, m.conv_.beta, m.conv_.running_mean,
                                         m.conv_.running_var, m.conv_.spec.eps);
  Tensor h =
      ops::conv2d(fake_quant_act(b.images, p0), fake_quant_weight(f.weight, {8, 0}), f.bias, m.conv_.params(8, 8));
  h = ops::global_avg_pool(ops::relu(h));
  const Tensor want = ops::linear(fake_quant_act(h, p1), fake_quant_weight(m.fc_.weight, {4, 2}), m.fc_.bias);
  CHECK(got.to_vector() == want.to_vector());
  // fp16: weights and inputs rounded to half
  a["conv"].precision = Precision::fp16;
  a["fc"].precision = Precision::fp16;
  m.set_layer_hook(std::make_shared<FakeQuantHook>(a));
  Tensor h16 = ops::conv2d(fake_quant_f16(b.images), fake_quant_f16(f.weight), f.bias, m.conv_.params(8, 8));
  h16 = ops::global_avg_pool(ops::relu(h16));
  const Tensor want16 = ops::linear(fake_quant_f16(h16), fake_quant_f16(m.fc_.weight), m.fc_.bias);
  CHECK(m.forward(b, false).to_vector() == want16.to_vector());
  // int8 without calibration names the layer
  a["conv"] = LayerQuant{Precision::int8, 0, {}, nullptr};
  m.set_layer_hook(std::make_shared<FakeQuantHook>(a));
  CHECK_THROWS_WITH_AS(m.forward(b, false), doctest::Contains("layer 'conv' is int8"), Error);
}

TEST_CASE("CNN hook wiring: no hook / identity hook give identical outputs, every quant layer is hooked") {
  autograd::NoGradGuard ng;
  std::vector<std::unique_ptr<models::CnnModel>> ms;
  ms.push_back(models::make_mobilenetv2(models::MobileNetLayout::torchvision));
  ms.push_back(models::make_resnet50(models::ResNetLayout::torchvision));
  for (auto& m : ms) {
    models::formula_init(*m);
    models::Batch b;
    b.images = models::formula_input(1, 32, 32);  // [1, 3, 32, 32]
    const std::vector<float> plain = m->forward(b, false).to_vector();
    m->set_layer_hook(std::make_shared<FakeQuantHook>(Assignment{}));  // every layer absent: fp32 identity
    CHECK(m->forward(b, false).to_vector() == plain);
    auto cal = std::make_shared<CalibrationHook>();
    m->set_layer_hook(cal);
    CHECK(m->forward(b, false).to_vector() == plain);
    std::set<std::string> hooked;
    for (const auto& [name, ops] : cal->stats()) hooked.insert(name);
    std::set<std::string> want;
    for (const auto& l : m->quant_layers()) want.insert(l.name);
    CHECK(hooked == want);
    m->set_layer_hook(nullptr);
    CHECK(m->forward(b, false).to_vector() == plain);
    // the calibration picks per operand the observer with the smallest channel-weighted error
    for (const auto& [layer, ops] : cal->finish())
      for (const auto& [op, ci] : ops)
        for (const auto& [obs, err] : ci.error) CHECK(ci.error.at(observer_name(ci.chosen)) <= err);
  }
}

TEST_CASE("splits: disjoint, sized, deterministic per seed") {
  const Splits a = make_splits(100, 10, 20, -1, 3), b = make_splits(100, 10, 20, -1, 3);
  const Splits c = make_splits(100, 10, 20, -1, 4);
  CHECK(a.calib == b.calib);
  CHECK(a.search == b.search);
  CHECK(a.test == b.test);
  CHECK(a.calib != c.calib);
  CHECK(a.calib.size() == 10);
  CHECK(a.search.size() == 20);
  CHECK(a.test.size() == 70);
  std::set<int64_t> all(a.calib.begin(), a.calib.end());
  all.insert(a.search.begin(), a.search.end());
  all.insert(a.test.begin(), a.test.end());
  CHECK(all.size() == 100);
  CHECK(*all.rbegin() == 99);
  CHECK(make_splits(100, 5, 5, 7, 1).test.size() == 7);
  // Rounding samples: unused ones only while enough are left; calibration samples fill up the rest.
  for (const auto& [n_round, want_spare, want_calib] : {std::tuple{0, 0, 0}, {40, 40, 0}, {83, 83, 0}, {90, 83, 5}}) {
    INFO("n_rounding ", n_round);
    const Splits r = make_splits(100, 5, 5, 7, 1, n_round);  // 83 samples in no split
    CHECK(r.calib == make_splits(100, 5, 5, 7, 1).calib);    // the other splits do not depend on it
    CHECK(int64_t(r.rounding.size()) == want_spare + want_calib);
    CHECK(r.rounding_from_calib == want_calib);
    CHECK(std::is_sorted(r.rounding.begin(), r.rounding.end()));
    std::set<int64_t> others(r.search.begin(), r.search.end());
    others.insert(r.test.begin(), r.test.end());
    const std::set<int64_t> calib(r.calib.begin(), r.calib.end());
    int64_t in_calib = 0, in_others = 0;
    for (int64_t i : r.rounding) in_calib += calib.count(i), in_others += others.count(i);
    CHECK(in_calib == want_calib);
    CHECK(in_others == 0);
    CHECK(std::set<int64_t>(r.rounding.begin(), r.rounding.end()).size() == r.rounding.size());
  }
  CHECK_THROWS_WITH_AS(make_splits(10, 8, 5, -1, 0), doctest::Contains("exceed the 10 samples"), Error);
}
