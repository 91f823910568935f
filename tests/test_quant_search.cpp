// Dependency measurement on a tiny model with hand-computable effects, the augmented ordering, the
// bisection search (evaluation count, non-monotone flag), configuration files and the analysis cache.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "core/autograd/node.h"
#include "core/error.h"
#include "models/mobilenetv2.h"
#include "ops/ops.h"
#include "quant/cache.h"
#include "quant/config.h"
#include "quant/dependency.h"
#include "quant/evaluate.h"
#include "quant/ordering.h"
#include "quant/search.h"
#include "tests/temp_dir.h"

using namespace mpq;
using namespace mpq::quant;

namespace {
// out = W_c * ((W_a x) * (W_b x)), x = [1, 1]; W_a = W_b = [1, 0.3], W_c = [1]. The "loss" is out itself.
class ProductModel final : public models::Model {
 public:
  std::string name() const override { return "product"; }
  Tensor forward(const models::Batch&, bool) override {
    const Tensor x = Tensor::from_vector({1, 2}, {1.0f, 1.0f});  // [1, 2]
    auto lin = [&](const std::string& n, const Tensor& in, const Tensor& w) {
      return hook_ ? ops::linear(hook_->on_input(n, 0, in), hook_->on_weight(n, w), Tensor())
                   : ops::linear(in, w, Tensor());
    };
    const Tensor y = ops::mul(lin("a", x, wa_), lin("b", x, wb_));  // [1, 1]
    return lin("c", y, wc_);                                        // [1, 1]
  }
  std::vector<std::pair<std::string, Tensor*>> named_tensors() override {
    return {{"a", &wa_}, {"b", &wb_}, {"c", &wc_}};
  }
  std::vector<std::pair<std::string, Tensor*>> parameters() override { return named_tensors(); }
  std::vector<models::QuantLayer> quant_layers() const override {
    models::QuantGraph g;
    g.add("a", models::LayerKind::linear, "a", 2, {});
    g.add("b", models::LayerKind::linear, "b", 2, {});
    g.add("c", models::LayerKind::linear, "c", 1, {"a", "b"});
    return g.finish();
  }
  int64_t num_classes() const override { return 1; }
  Tensor wa_ = Tensor::from_vector({1, 2}, {1.0f, 0.3f}), wb_ = Tensor::from_vector({1, 2}, {1.0f, 0.3f});
  Tensor wc_ = Tensor::from_vector({1, 1}, {1.0f});
};

struct OutputAsLoss : TaskEvaluator {
  TaskResult evaluate(models::Model& m, const std::vector<int64_t>&) override {
    autograd::NoGradGuard ng;
    const double v = m.forward({}, false).item();
    return {-v, v, 1, {}};
  }
  int64_t size() const override { return 1; }
  std::string metric_name() const override { return "neg_output"; }
  Tensor outputs(models::Model& m, const std::vector<int64_t>&) override { return m.forward({}, false); }
  models::Batch batch(const std::vector<int64_t>&) override { return {}; }  // the models take no input
};

Calibration hand_calibration() {
  Calibration c;
  c["a"][0].params = act_params_from_range(0, 1);
  c["b"][0].params = act_params_from_range(0, 1);
  c["c"][0].params = act_params_from_range(0, 2);
  return c;
}
}  // namespace

TEST_CASE("dependency: single effects and pairwise interactions match the hand computation (int4 vs fp32)") {
  ProductModel m;
  OutputAsLoss ev;
  const Calibration cal = hand_calibration();
  DependencyOptions opt;
  opt.precision = Precision::int4;
  opt.base = Precision::fp32;
  opt.all_pairs = true;
  opt.distill = false;  // the "loss" is the output value itself
  const auto layers = m.quant_layers();
  const DependencyResult d = measure_dependencies(layers, model_set_loss(m, ev, {0}, cal, opt), opt);
  // int4 per channel: W = [1, 0.3] -> scale 1/7, 0.3 * 7 = 2.1 -> 2, Q(W) = [1, 2/7]; x = 1 is exact in uint8
  // [0, 1]; W_c = 1 is exact. So W_a x: 1.3 -> 9/7. Layer c quantizes its input y on [0, 2].
  const ActQuantParams pc = cal.at("c").at(0).params;
  auto qc = [&](double y) { return double(fake_quant_act_value(float(y), pc)); };
  const double f = 1.3f, q = 1.0f + 2.0f / 7.0f;  // f32 arithmetic of the model
  const double base = f * f;
  CHECK(d.base_loss == doctest::Approx(base).epsilon(1e-6));
  CHECK(d.single[0] == doctest::Approx(q * f - base).epsilon(1e-5));
  CHECK(d.single[1] == doctest::Approx(q * f - base).epsilon(1e-5));
  CHECK(d.single[2] == doctest::Approx(qc(base) - base).epsilon(1e-5));
  REQUIRE(d.pairs.size() == 3);
  CHECK(d.pairs[0].i == 0);
  CHECK(d.pairs[0].j == 1);
  CHECK(d.pairs[0].interaction == doctest::Approx((q - f) * (q - f)).epsilon(1e-3));  // I_ab = (Q - f)^2
  CHECK(d.pairs[1].interaction ==
        doctest::Approx(qc(q * f) - qc(base) - (q * f - base)).epsilon(1e-3));  // I_ac: c's rounding moves
  CHECK(d.evaluations == 1 + 3 + 3);
  // neighbourhoods: edges give (a, c), (b, c); window 1 gives (a, b), (b, c)
  DependencyOptions e;
  CHECK(dependency_pairs(layers, e) == std::vector<std::pair<int, int>>{{0, 2}, {1, 2}});
  e.edges = false, e.window = 1;
  CHECK(dependency_pairs(layers, e) == std::vector<std::pair<int, int>>{{0, 1}, {1, 2}});
  // augmented: a = sum Omega dL / sum Omega^2; score = a Omega + dL + 1/2 sum_j I_ij
  // dL_a, dL_b < 0 here, so the least-squares a is negative and clamped to 0
  CHECK(d.single[0] < 0);
  LayerScores s = augmented_scores({1.0, 2.0, 0.0}, d, false);
  CHECK(s.scale == 0.0);
  s = augmented_scores({-1.0, -2.0, 0.0}, d, false);
  CHECK(s.scale == doctest::Approx((-d.single[0] - 2 * d.single[1]) / 5.0));
  const auto half = d.half_interaction_sum();
  CHECK(half[0] == doctest::Approx(0.5 * (d.pairs[0].interaction + d.pairs[1].interaction)));
  CHECK(s.augmented[2] == doctest::Approx(d.single[2] + half[2]));
  CHECK(make_ordering(s, OrderKind::hessian) == std::vector<int>{1, 0, 2});
  // positive-only interactions: I_ab > 0 counts, a negative I would not
  const LayerScores sp = augmented_scores({-1.0, -2.0, 0.0}, d, true);
  double want0 = 0.5 * (std::max(d.pairs[0].interaction, 0.0) + std::max(d.pairs[1].interaction, 0.0));
  CHECK(sp.half_interaction[0] == doctest::Approx(want0));
  CHECK(make_ordering(s, OrderKind::random, 5) == make_ordering(s, OrderKind::random, 5));
}

TEST_CASE("ordering: per_saving divides every score by the bytes saved, a layer saving nothing goes last") {
  LayerScores s;
  s.layers = {"small", "large", "none", "gain"};
  s.omega = {1.0, 4.0, 0.5, 2.0};
  s.single = {2.0, 6.0, 0.1, -1.0};
  s.half_interaction = {0.5, 1.0, 0.0, 0.0};
  s.augmented = {3.0, 8.0, 0.2, -0.5};
  // by score: gain (-0.5), none (0.2), small (3), large (8)
  CHECK(make_ordering(s, OrderKind::augmented) == std::vector<int>{3, 2, 0, 1});
  const LayerScores p = per_saving(s, {100.0, 1000.0, 0.0, 10.0});
  CHECK(p.augmented[0] == doctest::Approx(0.03));
  CHECK(p.augmented[1] == doctest::Approx(0.008));
  CHECK(std::isinf(p.augmented[2]));
  CHECK(p.augmented[3] == doctest::Approx(-0.05));
  CHECK(p.omega[1] == doctest::Approx(0.004));
  CHECK(p.single[0] == doctest::Approx(0.02));
  CHECK(p.half_interaction[1] == doctest::Approx(0.001));
  // per byte: gain (-0.05) still first, then large (0.008) before small (0.03), none last
  CHECK(make_ordering(p, OrderKind::augmented) == std::vector<int>{3, 1, 0, 2});
  CHECK(make_ordering(p, OrderKind::hessian) == std::vector<int>{1, 0, 3, 2});  // 0.004, 0.01, 0.2, inf
  CHECK(make_ordering(p, OrderKind::random, 5) == make_ordering(s, OrderKind::random, 5));
  CHECK_THROWS_WITH_AS(per_saving(s, {1.0, 2.0}), doctest::Contains("2 savings for 4 layers"), Error);
}

TEST_CASE("search: bisection finds the exact k in ceil(log2(N))+2 evaluations on a monotone metric") {
  for (int n : {1, 7, 20, 53, 161}) {
    std::vector<int> order(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) order[size_t(i)] = n - 1 - i;
    for (int target : {0, 1, n / 3, n - 1, n}) {
      SearchOptions opt;
      opt.range.max_drop = target + 0.5;  // metric = -(#int8) stays inside iff #int8 <= target
      opt.stage2 = false;
      const ConfigMetric metric = [](const std::vector<Precision>& p) {
        return -double(std::count(p.begin(), p.end(), Precision::int8));
      };
      const SearchResult r = bisection_search(n, order, order, metric, opt);
      CHECK(r.k8 == target);
      // the start, the end point k = n, then a bisection of [0, n); an end point inside ends the stage
      CHECK(r.evaluations <= int64_t(std::ceil(std::log2(double(n)))) + 2);
      if (target == n) CHECK(r.evaluations == 2);
      CHECK(r.warnings.empty());
      CHECK(r.final_ok);
      for (int i = 0; i < n; ++i)
        CHECK(r.precisions[size_t(order[size_t(i)])] == (i < target ? Precision::int8 : Precision::fp16));
    }
  }
  // two stages: lowering more than 10 layers costs 10 each; every int4 layer costs 1
  const ConfigMetric m2 = [](const std::vector<Precision>& p) {
    const double n8 = double(std::count(p.begin(), p.end(), Precision::int8));
    const double n4 = double(std::count(p.begin(), p.end(), Precision::int4));
    return -10.0 * std::max(0.0, n8 + n4 - 10) - n4;
  };
  std::vector<int> id(20);
  for (int i = 0; i < 20; ++i) id[size_t(i)] = i;
  SearchOptions o2;
  o2.range.max_drop = 3.5;
  o2.bytes = [](const std::vector<Precision>& p) { return weight_bytes(std::vector<int64_t>(20, 100), p); };
  o2.max_bytes = 1000;
  const SearchResult r2 = bisection_search(20, id, id, m2, o2);
  CHECK(r2.k8 == 10);
  CHECK(r2.k4 == 3);
  CHECK(r2.final_metric == -3.0);
  CHECK(r2.weight_bytes == 10 * 200 + 7 * 100 + 3 * 50);
  CHECK(!r2.memory_ok);  // 2850 bytes > 1000
}

TEST_CASE("search: the fill lowers the layers past the bisection's prefix that stay inside the range") {
  // 6 layers, int8 free; every int4 layer costs 1 point except layer 2 (10 points), which the ordering puts
  // third: the int4 bisection stops at k4 = 2 (layers 0, 1), range: drop <= 3.5
  const ConfigMetric metric = [](const std::vector<Precision>& p) {
    double m = 0;
    for (size_t i = 0; i < p.size(); ++i)
      if (p[i] == Precision::int4) m -= i == 2 ? 10 : 1;
    return m;
  };
  const std::vector<int> id = {0, 1, 2, 3, 4, 5};
  SearchOptions opt;
  opt.range.max_drop = 3.5;
  opt.objective = Objective::bytes;
  opt.bytes = [](const std::vector<Precision>& p) { return weight_bytes(std::vector<int64_t>(6, 100), p); };
  const SearchResult plain = bisection_search(6, id, id, metric, opt);
  CHECK(plain.k8 == 6);
  CHECK(plain.k4 == 2);
  CHECK(plain.filled.empty());
  opt.fill = true;
  const SearchResult f = bisection_search(6, id, id, metric, opt);
  // layer 2 was probed by the bisection (k4 = 3, outside): memoised; layer 3 is inside (-3); 4 and 5 are not
  CHECK(f.filled == std::vector<int>{3});
  CHECK(f.k8 == 6);
  CHECK(f.k4 == 3);
  CHECK(f.final_ok);
  CHECK(f.final_metric == -3.0);
  CHECK(f.weight_bytes == 3 * 50 + 3 * 100);
  for (size_t i = 0; i < 6; ++i) CHECK((f.precisions[i] == Precision::int4) == (i == 0 || i == 1 || i == 3));
  CHECK(f.evaluations == plain.evaluations + 3);  // {0, 1, 3}, {0, 1, 3, 4}, {0, 1, 3, 5}
  int fill_probes = 0;
  for (const Probe& p : f.probes) fill_probes += p.stage == 6;
  CHECK(fill_probes == 4);  // layers 2 (memoised), 3, 4, 5
  // an independent re-check that rejects the filled configuration: the bisection's result is kept
  opt.recheck = [&](const std::vector<Precision>& p) { return metric(p) - (p[3] == Precision::int4 ? 5 : 0); };
  const SearchResult back = bisection_search(6, id, id, metric, opt);
  CHECK(back.filled.empty());
  CHECK(back.k4 == 2);
  CHECK(back.final_ok);
  REQUIRE(!back.warnings.empty());
  CHECK(back.warnings.back().find("fill: the re-check") != std::string::npos);
  // with the latency objective and int4 slower than int8, no int4 layer improves it: nothing is evaluated
  opt.recheck = nullptr;
  opt.objective = Objective::latency;
  opt.latency = [](const std::vector<Precision>& p) {
    return 10.0 + double(std::count(p.begin(), p.end(), Precision::int4));
  };
  const SearchResult lat = bisection_search(6, id, id, metric, opt);
  CHECK(lat.k4 == 0);
  CHECK(lat.filled.empty());
  for (const Probe& p : lat.probes) CHECK(p.stage < 5);
}

TEST_CASE("search: a non-monotone metric is flagged, the sweep shows how far bisection is from the best k") {
  // metric(k) = -k except a dip at k = 5; range: drop <= 8
  const ConfigMetric metric = [](const std::vector<Precision>& p) {
    const int k = int(std::count(p.begin(), p.end(), Precision::int8));
    return k == 5 ? -50.0 : -double(k);
  };
  std::vector<int> id(20);
  for (int i = 0; i < 20; ++i) id[size_t(i)] = i;
  SearchOptions opt;
  opt.range.max_drop = 8;
  opt.stage2 = false;
  const SearchResult r = bisection_search(20, id, id, metric, opt);
  CHECK(r.k8 == 4);  // probes 20 (out), 10 (out), 5 (out: the dip), 2, 3, 4
  REQUIRE(!r.warnings.empty());
  CHECK(r.warnings[0].find("non-monotone") != std::string::npos);
  const SweepResult s = sweep_k(std::vector<Precision>(20, Precision::fp16), id, Precision::int8, metric, opt.range);
  CHECK(s.best_k == 8);
  CHECK(s.prefix_k == 4);
  CHECK(s.probes.size() == 21);
  // a dip in the middle that the end recovers from (what a few hundred samples produce): the end point is
  // probed first, so the all-int8 configuration is found (a plain bisection would stop below k = 10)
  const ConfigMetric mid_dip = [](const std::vector<Precision>& p) {
    return std::count(p.begin(), p.end(), Precision::int8) == 10 ? -50.0 : 0.0;
  };
  const SearchResult e = bisection_search(20, id, id, mid_dip, opt);
  CHECK(e.k8 == 20);
  CHECK(e.evaluations == 2);
  SearchOptions bad;
  CHECK_THROWS_WITH_AS(bisection_search(2, {0, 1}, {0, 1}, metric, bad), doctest::Contains("exactly one"), Error);
}

TEST_CASE("latency table: JSON input, MAC placeholder is labelled an estimate") {
  const auto layers = models::make_mobilenetv2(models::MobileNetLayout::tflite)->quant_layers();
  const LatencyTable est = mac_estimate_latency_table(layers);
  CHECK(!est.measured);
  CHECK(est.source.find("not measured") != std::string::npos);
  const LatencyTable back = latency_table_from_json(est.to_json(), "roundtrip");
  std::vector<std::string> names;
  for (const auto& l : layers) names.push_back(l.name);
  const std::vector<Precision> p16(names.size(), Precision::fp16), p8(names.size(), Precision::int8);
  CHECK(config_latency_ms(back, names, p8) < config_latency_ms(back, names, p16));
  CHECK_THROWS_WITH_AS(config_latency_ms(back, {"nope"}, {Precision::int8}), doctest::Contains("'nope'"), Error);
}

TEST_CASE("config: save / load round trip and clear errors") {
  auto model = models::make_mobilenetv2(models::MobileNetLayout::tflite);
  const auto layers = model->quant_layers();
  QuantConfig cfg;
  cfg.model = "mobilenetv2";
  for (size_t i = 0; i < layers.size(); ++i) {
    LayerQuant q;
    // every precision; only the integer ones carry activation parameters (`mpq search --start bf16` writes
    // bf16 layers without them)
    const Precision all[] = {Precision::int8, Precision::int4, Precision::fp16, Precision::bf16, Precision::fp32};
    q.precision = all[i % 5];
    if (q.precision == Precision::int8 || q.precision == Precision::int4)
      q.act[0] = act_params_from_range(-0.5f, 6.0f + float(i));
    if (q.precision == Precision::int4) q.weight_group = 32;
    cfg.layers[layers[i].name] = q;
  }
  const std::string dir = testing::fresh_temp_dir("quant_config");
  const std::string path = dir + "/cfg.json";
  save_config(path, cfg, layers);
  const QuantConfig back = load_config(path, "mobilenetv2", layers);
  for (const auto& l : layers) {
    const LayerQuant &a = cfg.layers.at(l.name), &b = back.layers.at(l.name);
    CHECK(a.precision == b.precision);
    CHECK(a.weight_group == b.weight_group);
    if (!a.act.empty()) {
      CHECK(a.act.at(0).scale == b.act.at(0).scale);
      CHECK(a.act.at(0).zero_point == b.act.at(0).zero_point);
    }
  }
  CHECK_THROWS_WITH_AS(load_config(path, "resnet50", layers),
                       doctest::Contains("is for model 'mobilenetv2', not 'resnet50'"), Error);
  auto edited = [&](auto fn) {
    nlohmann::json j = config_to_json(cfg, layers);
    fn(j);
    return j;
  };
  const std::string first = layers[0].name;
  CHECK_THROWS_WITH_AS(config_from_json(edited([](auto& j) { j["layers"][0]["name"] = "features.99.conv"; }), "x",
                                        "mobilenetv2", layers),
                       doctest::Contains("layer 'features.99.conv' is not a quantizable layer of mobilenetv2"), Error);
  CHECK_THROWS_WITH_AS(
      config_from_json(edited([](auto& j) { j["layers"][0]["precision"] = "int3"; }), "x", "mobilenetv2", layers),
      doctest::Contains("field 'precision': precision 'int3' is unknown"), Error);
  const std::string missing = "layer '" + first + "' of mobilenetv2 is missing";
  CHECK_THROWS_WITH_AS(config_from_json(edited([](auto& j) { j["layers"].erase(0); }), "x", "mobilenetv2", layers),
                       doctest::Contains(missing.c_str()), Error);
  CHECK_THROWS_WITH_AS(config_from_json(edited([](auto& j) { j["layers"][0]["inputs"][0]["zero_point"] = 300; }), "x",
                                        "mobilenetv2", layers),
                       doctest::Contains("'zero_point' is 300"), Error);
  CHECK_THROWS_WITH_AS(config_from_json(edited([](auto& j) { j["layers"][0]["inputs"] = nlohmann::json::array(); }),
                                        "x", "mobilenetv2", layers),
                       doctest::Contains("precision int8 needs 'inputs' with a scale and zero point"), Error);
  CHECK_THROWS_WITH_AS(load_config(dir + "/absent.json", "mobilenetv2", layers), doctest::Contains("cannot open"),
                       Error);
  // weights identity
  const std::string wfile = dir + "/w.bin";
  std::ofstream(wfile) << "weights-A";
  cfg.weights = weights_identity(wfile);
  save_config(path, cfg, layers);
  std::ofstream(wfile) << "weights-B-longer";
  const WeightsId other = weights_identity(wfile);
  CHECK_THROWS_WITH_AS(load_config(path, "mobilenetv2", layers, &other), doctest::Contains("was calibrated on weights"),
                       Error);
}

TEST_CASE("analysis cache: round trip, changed inputs recompute, stale entries ignored") {
  const std::string dir = testing::fresh_temp_dir("quant_cache") + "/cache";
  const std::string wfile = testing::fresh_temp_dir("quant_cache_w") + "/w.bin";
  std::ofstream(wfile) << "abc";
  const WeightsId w = weights_identity(wfile);
  CHECK(w.size == 3);
  const AnalysisCache cache(dir);
  const auto in = analysis_inputs("mobilenetv2", w, {1, 2, 3}, {{"draws", 8}});
  CHECK(!cache.load("traces", in));
  HutchinsonResult h;
  h.trace = {1.0 / 3, 2e-9};
  h.std_error = {0.1, 0.2};
  h.draws = 8;
  cache.store("traces", in, to_json(h));
  const auto got = cache.load("traces", in);
  REQUIRE(got);
  CHECK(hutchinson_from_json(*got).trace == h.trace);
  CHECK(!cache.load("traces", analysis_inputs("mobilenetv2", w, {1, 2, 4}, {{"draws", 8}})));
  CHECK(!cache.load("traces", analysis_inputs("mobilenetv2", w, {1, 2, 3}, {{"draws", 9}})));
  std::ofstream(wfile) << "abd";
  CHECK(analysis_key(analysis_inputs("mobilenetv2", weights_identity(wfile), {1, 2, 3}, {{"draws", 8}})) !=
        analysis_key(in));
  // calibration and dependency JSON round trips
  Calibration c = hand_calibration();
  c["a"][0].chosen = ObserverKind::mse;
  const Calibration cb = calibration_from_json(to_json(c));
  CHECK(cb.at("c").at(0).params.scale == c.at("c").at(0).params.scale);
  CHECK(cb.at("a").at(0).chosen == ObserverKind::mse);
  DependencyResult d;
  d.layers = {"a", "b"};
  d.single = {0.5, 0.25};
  d.pairs = {{0, 1, 1.0, 0.25}};
  const DependencyResult db = dependency_from_json(to_json(d));
  CHECK(db.pairs[0].interaction == 0.25);
  CHECK(db.single == d.single);
}

namespace {
// logits [1, 2] = [W_a x, 0], x = [1, 1], W_a = [1, 0.3]
class TwoLogitModel final : public models::Model {
 public:
  std::string name() const override { return "two"; }
  Tensor forward(const models::Batch&, bool) override {
    const Tensor x = Tensor::from_vector({1, 2}, {1.0f, 1.0f});  // [1, 2]
    const Tensor y = hook_ ? ops::linear(hook_->on_input("a", 0, x), hook_->on_weight("a", wa_), Tensor())
                           : ops::linear(x, wa_, Tensor());  // [1, 1]
    return ops::concat({y, Tensor::zeros({1, 1})}, 1);       // [1, 2]
  }
  std::vector<std::pair<std::string, Tensor*>> named_tensors() override { return {{"a", &wa_}}; }
  std::vector<std::pair<std::string, Tensor*>> parameters() override { return named_tensors(); }
  std::vector<models::QuantLayer> quant_layers() const override {
    models::QuantGraph g;
    g.add("a", models::LayerKind::linear, "a", 2, {});
    return g.finish();
  }
  int64_t num_classes() const override { return 2; }
  Tensor wa_ = Tensor::from_vector({1, 2}, {1.0f, 0.3f});
};
}  // namespace

TEST_CASE("dependency: distillation loss gives dL = KL(p_fp32 || q) for one quantized layer") {
  TwoLogitModel m;
  OutputAsLoss ev;  // only its outputs() is used with distill
  Calibration cal;
  cal["a"][0].params = act_params_from_range(0, 1);
  DependencyOptions opt;
  opt.precision = Precision::int4;
  opt.base = Precision::fp32;
  const DependencyResult d = measure_dependencies(m.quant_layers(), model_set_loss(m, ev, {0}, cal, opt), opt);
  const double zf = 1.3f, zq = 1.0f + 2.0f / 7.0f;
  const double pf = 1 / (1 + std::exp(-zf)), qf = 1 / (1 + std::exp(-zq));
  const double kl = pf * std::log(pf / qf) + (1 - pf) * std::log((1 - pf) / (1 - qf));
  const double entropy = -pf * std::log(pf) - (1 - pf) * std::log(1 - pf);
  CHECK(d.base_loss == doctest::Approx(entropy).epsilon(1e-6));
  CHECK(d.single[0] == doctest::Approx(kl).epsilon(1e-3));
  CHECK(d.single[0] > 0);
}

TEST_CASE("search: range validation, reference check and the final choice by latency and memory") {
  AccuracyRange r;
  r.max_drop = -0.1;
  CHECK_THROWS_WITH_AS(r.validate(), doctest::Contains("--max-drop -0.1 must be >= 0"), Error);
  r.max_drop.reset();
  for (double bad : {0.0, -0.5, 1.5}) {
    r.min_relative = bad;
    CHECK_THROWS_WITH_AS(r.validate(), doctest::Contains("must be in (0, 1]"), Error);
  }
  r.min_relative = 0.99;
  CHECK(r.threshold(80) == doctest::Approx(79.2));
  CHECK(r.ok(79.2, 80));
  CHECK(!r.ok(79.1, 80));
  r.max_drop = 1;
  CHECK_THROWS_WITH_AS(r.validate(), doctest::Contains("exactly one"), Error);

  // 4 layers, identity orders; the metric stays inside the range everywhere unless `dip` says otherwise
  const std::vector<int> id = {0, 1, 2, 3};
  std::set<std::vector<Precision>> dip;
  std::vector<std::vector<Precision>> asked;
  const ConfigMetric metric = [&](const std::vector<Precision>& p) {
    asked.push_back(p);
    return dip.count(p) ? 0.0 : 100.0;
  };
  // latency per layer (ms): fp16 10; int8 4; int4 6 (slower than int8, as int4 can be on a CPU)
  auto lat = [](double l8_0, double l8, double l4) {
    return [=](const std::vector<Precision>& p) {
      double ms = 0;
      for (size_t i = 0; i < p.size(); ++i)
        ms += p[i] == Precision::fp16 ? 10 : p[i] == Precision::int8 ? (i == 0 ? l8_0 : l8) : l4;
      return ms;
    };
  };
  SearchOptions o;
  o.range.max_drop = 1;
  o.bytes = [](const std::vector<Precision>& p) { return weight_bytes({100, 100, 100, 100}, p); };
  SearchResult s = bisection_search(4, id, id, metric, o);  // no latency: the most lowered
  CHECK(s.k8 == 4);
  CHECK(s.k4 == 4);
  CHECK(s.evaluations == 3);  // the start and the two stages' end points, both inside
  o.latency = lat(4, 4, 6);
  s = bisection_search(4, id, id, metric, o);  // int4 slower: (4, 0) at 16 ms
  CHECK(s.k8 == 4);
  CHECK(s.k4 == 0);
  CHECK(s.k4_max == 4);
  CHECK(*s.latency_ms == 16);
  o.max_bytes = 320;  // needs k4 >= 2 (400 - 50 k4 bytes): the fastest of those is (4, 2) at 20 ms
  s = bisection_search(4, id, id, metric, o);
  CHECK(s.k4 == 2);
  CHECK(*s.latency_ms == 20);
  CHECK(s.weight_bytes == 300);
  CHECK(s.memory_ok);
  CHECK(s.evaluations == 4);  // (4, 2) was not probed: the final check evaluates it
  o.max_bytes.reset();
  // a latency tolerance: (4, k4) costs 16 + 2 k4 ms; within 12.5 % of the fastest 16 ms (<= 18 ms) is (4, 1),
  // and the smallest of those is taken; 25 % admits (4, 2) at 20 ms
  o.latency_tolerance = 0.125;
  s = bisection_search(4, id, id, metric, o);
  CHECK(s.k4 == 1);
  CHECK(*s.latency_ms == 18);
  CHECK(s.weight_bytes == 350);
  o.latency_tolerance = 0.25;
  s = bisection_search(4, id, id, metric, o);
  CHECK(s.k4 == 2);
  CHECK(*s.latency_ms == 20);
  o.latency_tolerance = 0;
  // the bytes objective takes the smallest candidate, (4, 4) at 200 bytes, although int4 is slower
  o.objective = Objective::bytes;
  s = bisection_search(4, id, id, metric, o);
  CHECK(s.k4 == 4);
  CHECK(s.weight_bytes == 200);
  CHECK(*s.latency_ms == 24);
  o.objective = Objective::latency;
  // layer 0's int8 is fast, the others' int8 and int4 slow: (1, 0) = 1 + 30 ms is the fastest, never probed
  o.latency = lat(1, 20, 30);
  asked.clear();
  s = bisection_search(4, id, id, metric, o);
  CHECK(s.k8 == 1);
  CHECK(s.k4 == 0);
  CHECK(s.evaluations == 4);  // the final check evaluates it
  CHECK(asked.back() == std::vector<Precision>{Precision::int8, Precision::fp16, Precision::fp16, Precision::fp16});
  CHECK(s.final_ok);
  // ... and when that unprobed configuration turns out outside the range, the fastest verified one is taken
  dip.insert({Precision::int8, Precision::fp16, Precision::fp16, Precision::fp16});
  s = bisection_search(4, id, id, metric, o);
  CHECK(s.k8 == 0);  // all fp16, 40 ms, beats the other verified candidates: (4, 0) 61 ms, (4, 4) 120 ms
  CHECK(s.final_ok);
  REQUIRE(!s.warnings.empty());
  CHECK(s.warnings.back().find("final check: (k8 1, k4 0) scored 0") != std::string::npos);
  dip.clear();
  // a reference the starting configuration itself misses
  o.reference = 102;
  o.metric_name = "top-1 %";
  CHECK_THROWS_WITH_AS(bisection_search(4, id, id, metric, o),
                       doctest::Contains("missed by the starting configuration itself (every layer fp16: top-1 % 100"),
                       Error);
  o.reference = 100.5;  // 100 >= 100.5 - 1: fine
  CHECK(bisection_search(4, id, id, metric, o).reference == 100.5);
  // memory limits: 4 layers of 50 .. 400 bytes, 10 bytes stored whatever the configuration
  BytesTable bt;
  bt.layer.assign(4, {{Precision::fp16, 200}, {Precision::int8, 100}, {Precision::int4, 50}});
  bt.fixed = 10;
  CHECK(bt(std::vector<Precision>(4, Precision::int8)) == 410);
  CHECK_THROWS_WITH_AS(bt(std::vector<Precision>(4, Precision::fp32)), doctest::Contains("no fp32 size"), Error);
  CHECK_THROWS_WITH_AS(check_max_bytes(209, bt, "tiny"),
                       doctest::Contains("--max-bytes 209 is below the smallest footprint of tiny's 4 quantizable "
                                         "layers (210 bytes"),
                       Error);
  CHECK_NOTHROW(check_max_bytes(210, bt, "tiny"));
  CHECK_THROWS_WITH_AS(check_max_bytes(-5, bt, "tiny"), doctest::Contains("positive"), Error);
}

TEST_CASE("search: the metric memo evaluates each configuration once and round-trips through JSON") {
  int calls = 0;
  MemoMetric m([&](const std::vector<Precision>& p) {
    ++calls;
    return double(p.size()) + (p[0] == Precision::int4 ? 0.5 : 0);
  });
  const std::vector<Precision> a = {Precision::int4, Precision::bf16, Precision::fp32},
                               b = {Precision::fp16, Precision::int8, Precision::int8};
  CHECK(m(a) == 3.5);
  CHECK(m(a) == 3.5);
  CHECK(m(b) == 3);
  CHECK(calls == 2);
  CHECK(m.fresh() == 2);
  CHECK(m.hits() == 1);
  const nlohmann::json j = m.to_json();
  CHECK(j["configs"]["4b3"] == 3.5);
  CHECK(j["configs"]["h88"] == 3);
  MemoMetric back([&](const std::vector<Precision>&) -> double {
    FAIL("evaluated despite the memo");
    return 0;
  });
  back.merge_json(j);
  CHECK(back(a) == 3.5);
  CHECK(back.fresh() == 0);
  CHECK_THROWS_WITH_AS(back.merge_json({{"configs", {{"h9", 1.0}}}}), doctest::Contains("unknown precision letter '9'"),
                       Error);
}

TEST_CASE("search: per-sample hits ride along in the memo and give a paired confidence bound") {
  // paired standard error against a direct computation of sqrt(sum (d - mean)^2 / (n (n - 1)))
  auto direct = [](const std::string& a, const std::string& b) {
    const double n = double(a.size());
    std::vector<double> d;
    double mean = 0;
    for (size_t i = 0; i < a.size(); ++i) d.push_back(double(a[i] - '0') - double(b[i] - '0')), mean += d.back() / n;
    double ss = 0;
    for (double v : d) ss += (v - mean) * (v - mean);
    return std::sqrt(ss / (n * (n - 1)));
  };
  CHECK(paired_standard_error("1100", "1010") == doctest::Approx(std::sqrt(2.0 / 12)).epsilon(1e-14));
  CHECK(paired_standard_error("1111100000", "1111100000") == 0);
  const std::string a = "1101101110011101", b = "1111101010011111";
  CHECK(paired_standard_error(a, b) == doctest::Approx(direct(a, b)).epsilon(1e-14));
  CHECK(paired_standard_error("1", "0") == 0);  // n < 2
  CHECK_THROWS_WITH_AS(paired_standard_error("10", "1"), doctest::Contains("2 outcomes against 1"), Error);
  CHECK_THROWS_WITH_AS(paired_standard_error("1x", "10"), doctest::Contains("outcome 1 is not"), Error);
  // one-sided normal quantiles (tables: 1.2815515655446004, 1.6448536269514722, 1.959963984540054)
  CHECK(one_sided_z(0.5) == 0);  // exactly: the default must be the plain estimate
  CHECK(one_sided_z(0.9) == doctest::Approx(1.2815515655446004).epsilon(1e-12));
  CHECK(one_sided_z(0.95) == doctest::Approx(1.6448536269514722).epsilon(1e-12));
  CHECK(one_sided_z(0.975) == doctest::Approx(1.959963984540054).epsilon(1e-12));
  CHECK_THROWS_WITH_AS(one_sided_z(1.0), doctest::Contains("--confidence 1 must be in [0.5, 1)"), Error);
  CHECK_THROWS_WITH_AS(one_sided_z(0.4), doctest::Contains("--confidence 0.4"), Error);

  // 4 layers, 200 samples; lowering k layers to int8 makes 3k samples disagree with the fp16 start: 2k
  // right -> wrong and k wrong -> right (net -k samples = -0.5k points), so the estimate drops 0.5 points per
  // layer while the disagreements widen the bound.
  const int n = 4, samples = 200;
  auto hits_of = [&](int k) {
    std::string h(size_t(samples), '0');
    for (int i = 0; i < samples / 2; ++i) h[size_t(i)] = '1';  // fp16: 50 %
    for (int i = 0; i < 2 * k; ++i) h[size_t(i)] = '0';
    for (int i = 0; i < k; ++i) h[size_t(samples / 2 + i)] = '1';
    return h;
  };
  int calls = 0;
  MemoMetric memo = MemoMetric::with_hits([&](const std::vector<Precision>& p) {
    ++calls;
    const int k = int(std::count(p.begin(), p.end(), Precision::int8));
    const std::string h = hits_of(k);
    return ConfigScore{100.0 * double(std::count(h.begin(), h.end(), '1')) / samples, h};
  });
  const std::vector<int> id = {0, 1, 2, 3};
  const std::vector<Precision> fp16(size_t(n), Precision::fp16);
  SearchOptions o;
  o.range.max_drop = 1.0;  // points
  o.stage2 = false;
  const SearchResult plain = bisection_search(n, id, id, paired_lower_bound(memo, fp16, 0), o);
  CHECK(plain.k8 == 2);  // 50 - 0.5 k >= 49
  const double z = one_sided_z(0.9);
  const SearchResult bounded = bisection_search(n, id, id, paired_lower_bound(memo, fp16, z), o);
  // k = 1: estimate 49.5, se of d (one +1, two -1 in 200) = sqrt((3 - 200 * 0.005^2) / (200 * 199)) = 0.8655 pt
  // -> bound 49.5 - 1.2816 * 0.8655 = 48.39 < 49: even one layer is outside at 90 %
  CHECK(paired_standard_error(hits_of(1), hits_of(0)) ==
        doctest::Approx(std::sqrt((3 - 200 * 0.005 * 0.005) / (200.0 * 199))));
  CHECK(bounded.k8 == 0);
  CHECK(bounded.final_metric == 50);  // the start agrees with itself: no margin
  // the memo keeps the hits through JSON
  const nlohmann::json j = memo.to_json();
  CHECK(j["hits"]["8888"] == hits_of(4));
  MemoMetric back = MemoMetric::with_hits([&](const std::vector<Precision>&) -> ConfigScore {
    FAIL("evaluated despite the memo");
    return {};
  });
  back.merge_json(j);
  CHECK(back.score(std::vector<Precision>(size_t(n), Precision::int8)).hits == hits_of(4));
  // a plain metric has no hits: a bound over it is refused with a clear message
  MemoMetric plain_memo([](const std::vector<Precision>&) { return 1.0; });
  CHECK_THROWS_WITH_AS(paired_lower_bound(plain_memo, fp16, 1.0)(fp16), doctest::Contains("per-sample outcomes"),
                       Error);
}

TEST_CASE("evaluate: a logit row holding a NaN or an infinity is a miss, counted as non-finite") {
  // three samples, label 1: a clean hit, a NaN at the label (the old "nothing is greater than NaN" hit), an
  // infinity elsewhere
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const Tensor logits = Tensor::from_vector({3, 3}, {0.f, 2.f, 1.f, 0.f, nan, 1.f, inf, 2.f, 1.f});  // [3, 3]
  EvalTotals t;
  score_logits(logits, {1, 1, 1}, t);
  CHECK(t.samples == 3);
  CHECK(t.top1 == 1);
  CHECK(t.top5 == 1);
  CHECK(t.nonfinite == 2);
  CHECK(t.top1_hits == "100");
  CHECK(std::isfinite(t.mean_loss()));
  CHECK(t.mean_loss() == doctest::Approx(std::log(1 + std::exp(-2.0) + std::exp(-1.0))));
}

TEST_CASE("search: a configuration with non-finite outputs is outside every range, whatever its metric") {
  // 4 layers; lowering layer 3 (the last of the order) makes the outputs NaN, which the metric alone would
  // score as perfect
  const int n = 4;
  auto scorer = [](const std::vector<Precision>& p) {
    ConfigScore s{100.0, std::string(8, '1'), 0};
    if (p[3] != Precision::fp16) s.nonfinite = 8;
    return s;
  };
  MemoMetric memo = MemoMetric::with_hits(scorer);
  const ConfigMetric bound = paired_lower_bound(memo, std::vector<Precision>(n, Precision::fp32), 0.0);
  CHECK(bound(std::vector<Precision>(n, Precision::int8)) == -std::numeric_limits<double>::infinity());
  SearchOptions so;
  so.range.max_drop = 0.5;
  so.reference = 100.0;
  so.stage2 = false;
  const SearchResult r = bisection_search(n, {0, 1, 2, 3}, {0, 1, 2, 3}, bound, so);
  CHECK(r.k8 == 3);
  CHECK(r.precisions[3] == Precision::fp16);
  // the memo keeps the count through its JSON form
  MemoMetric copy = MemoMetric::with_hits(scorer);
  copy.merge_json(memo.to_json());
  CHECK(copy.score(std::vector<Precision>(n, Precision::int8)).nonfinite == 8);
  CHECK(copy.fresh() == 0);
}
