// Autograd engine and the core differentiable ops (element-wise, reductions, shape, matmul, activations,
// softmax, losses): every backward against central finite differences (tests/gradcheck.h).
#include <doctest/doctest.h>

#include "core/autograd/engine.h"
#include "core/error.h"
#include "ops/ops.h"
#include "tests/gradcheck.h"

using namespace mpq;
using mpq::testing::gradcheck;
using mpq::testing::randn;
using mpq::testing::uniform;
using V = std::vector<Tensor>;

TEST_CASE("autograd: element-wise ops with broadcasting match finite differences") {
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 5}, {3, 5}}, {{2, 3, 5}, {5}}, {{4, 1, 3}, {1, 7, 1}}, {{1}, {3, 2}}, {{2, 3, 4, 5}, {1, 3, 1, 1}}};
  for (auto& [sa, sb] : shapes) {
    CAPTURE(shape_str(sa));
    CAPTURE(shape_str(sb));
    Tensor a = randn(sa, 1).set_requires_grad();
    Tensor b = uniform(sb, 2, 0.5f, 2.0f).set_requires_grad();  // away from 0 for div
    gradcheck([](const V& x) { return ops::add(x[0], x[1]); }, {a, b});
    gradcheck([](const V& x) { return ops::sub(x[0], x[1]); }, {a, b});
    gradcheck([](const V& x) { return ops::mul(x[0], x[1]); }, {a, b});
    gradcheck([](const V& x) { return ops::div(x[0], x[1]); }, {a, b});
  }
  Tensor p = uniform({3, 7}, 3, 0.3f, 2.0f).set_requires_grad();
  gradcheck([](const V& x) { return ops::exp(x[0]); }, {p});
  gradcheck([](const V& x) { return ops::log(x[0]); }, {p});
  gradcheck([](const V& x) { return ops::sqrt(x[0]); }, {p});
  gradcheck([](const V& x) { return ops::square(x[0]); }, {p});
  gradcheck([](const V& x) { return ops::add_scalar(ops::mul_scalar(x[0], -2.5f), 1.0f); }, {p});
  gradcheck([](const V& x) { return ops::tanh(x[0]); }, {randn({5, 3}, 4).set_requires_grad()});
  gradcheck([](const V& x) { return ops::gelu(x[0]); }, {randn({5, 3}, 5, 2.0f).set_requires_grad()});
}

TEST_CASE("autograd: element-wise forward values") {
  Tensor a = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = Tensor::from_vector({3}, {10, 20, 30});
  CHECK(ops::add(a, b).to_vector() == std::vector<float>{11, 22, 33, 14, 25, 36});
  CHECK(ops::mul(a, b).to_vector() == std::vector<float>{10, 40, 90, 40, 100, 180});
  CHECK(ops::sub(b, a).to_vector() == std::vector<float>{9, 18, 27, 6, 15, 24});
  // a transposed view as an operand
  Tensor at = a.transpose_view(0, 1);  // [3, 2]
  CHECK(ops::add(at, Tensor::from_vector({1}, {0})).to_vector() == std::vector<float>{1, 4, 2, 5, 3, 6});
  CHECK_THROWS_WITH_AS(ops::add(a, Tensor::zeros({4})), doctest::Contains("[2, 3] and [4]"), Error);
}

TEST_CASE("autograd: relu and relu6 gradients away from the kinks") {
  // values kept away from 0 and 6, where the derivative jumps and finite differences are meaningless
  Tensor x = Tensor::from_vector({2, 4}, {-3.0f, -0.5f, 0.4f, 2.0f, 5.5f, 6.5f, 8.0f, -1.0f}).set_requires_grad();
  gradcheck([](const V& v) { return ops::relu(v[0]); }, {x});
  gradcheck([](const V& v) { return ops::relu6(v[0]); }, {x});
  CHECK(ops::relu6(x).to_vector() == std::vector<float>{0, 0, 0.4f, 2, 5.5f, 6, 6, 0});
}

TEST_CASE("autograd: reductions, expand, sum_to") {
  Tensor a = randn({2, 3, 4}, 7).set_requires_grad();
  gradcheck([](const V& x) { return ops::sum(x[0]); }, {a});
  gradcheck([](const V& x) { return ops::sum(x[0], {0, 2}, false); }, {a});
  gradcheck([](const V& x) { return ops::mean(x[0], {1}, true); }, {a});
  gradcheck([](const V& x) { return ops::mean(x[0], {-1}, false); }, {a});
  gradcheck([](const V& x) { return ops::expand(x[0], {3, 2, 3, 4}); }, {a});
  gradcheck([](const V& x) { return ops::sum_to(x[0], {3, 1}); }, {a});
  Tensor v = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(ops::sum(v).item() == 21.0f);
  CHECK(ops::sum(v, {0}, false).to_vector() == std::vector<float>{5, 7, 9});
  CHECK(ops::mean(v, {1}, true).to_vector() == std::vector<float>{2, 5});
  CHECK(ops::sum_to(v, {1, 3}).to_vector() == std::vector<float>{5, 7, 9});
}

TEST_CASE("autograd: shape ops") {
  Tensor a = randn({2, 3, 4}, 8).set_requires_grad();
  gradcheck([](const V& x) { return ops::reshape(x[0], {4, -1}); }, {a});
  gradcheck([](const V& x) { return ops::permute(x[0], {2, 0, 1}); }, {a});
  gradcheck([](const V& x) { return ops::mul(ops::transpose(x[0], 0, 2), ops::transpose(x[0], 0, 2)); }, {a});
  gradcheck([](const V& x) { return ops::slice(x[0], 1, 1, 3); }, {a});
  Tensor b = randn({2, 5, 4}, 9).set_requires_grad();
  gradcheck([](const V& x) { return ops::concat({x[0], x[1], x[0]}, 1); }, {a, b});
  gradcheck([](const V& x) { return ops::flatten(x[0], 1); }, {a});
  CHECK_THROWS_WITH_AS(ops::reshape(a, {5, -1}), doctest::Contains("[2, 3, 4]"), Error);
  CHECK_THROWS_WITH_AS(ops::concat({a, randn({2, 5, 3}, 1)}, 1), doctest::Contains("[2, 5, 3]"), Error);
}

TEST_CASE("autograd: matmul and linear, batched, broadcast and transposed operands") {
  // forward against naive loops
  Tensor a = randn({2, 3, 5, 7}, 10), b = randn({3, 7, 4}, 11);
  Tensor c = ops::matmul(a, b);
  REQUIRE(c.shape() == Shape{2, 3, 5, 4});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t m = 0; m < 5; ++m)
        for (int64_t n = 0; n < 4; ++n) {
          double acc = 0;
          for (int64_t k = 0; k < 7; ++k) acc += double(a.at({i, j, m, k})) * double(b.at({j, k, n}));
          CHECK(c.at({i, j, m, n}) == doctest::Approx(acc).epsilon(1e-5));
        }
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{1, 1}, {1, 1}}, {{3, 5}, {5, 2}}, {{2, 3, 5}, {5, 4}}, {{2, 3, 5}, {2, 5, 4}}, {{4, 1, 3, 2}, {5, 2, 3}}};
  for (auto& [sa, sb] : shapes) {
    CAPTURE(shape_str(sa));
    CAPTURE(shape_str(sb));
    gradcheck([](const V& x) { return ops::matmul(x[0], x[1]); },
              {randn(sa, 12).set_requires_grad(), randn(sb, 13).set_requires_grad()});
  }
  // transposed views go through the GEMM's transpose flags
  gradcheck([](const V& x) { return ops::matmul(ops::transpose(x[0], 0, 1), ops::transpose(x[1], -1, -2)); },
            {randn({6, 3}, 14).set_requires_grad(), randn({2, 4, 6}, 15).set_requires_grad()});
  gradcheck([](const V& x) { return ops::linear(x[0], x[1], x[2]); },
            {randn({2, 3, 5}, 16).set_requires_grad(), randn({4, 5}, 17).set_requires_grad(),
             randn({4}, 18).set_requires_grad()});
  CHECK_THROWS_WITH_AS(ops::matmul(randn({3, 5}, 1), randn({4, 2}, 1)), doctest::Contains("[3, 5] x [4, 2]"), Error);
  CHECK_THROWS_WITH_AS(ops::linear(randn({3, 5}, 1), randn({4, 6}, 1), Tensor()), doctest::Contains("[4, 6]"), Error);
}

TEST_CASE("autograd: softmax, log_softmax and the cross-entropy losses") {
  Tensor x = randn({3, 5}, 19, 2.0f).set_requires_grad();
  gradcheck([](const V& v) { return ops::softmax(v[0], 1); }, {x});
  gradcheck([](const V& v) { return ops::softmax(v[0], 0); }, {x});
  gradcheck([](const V& v) { return ops::log_softmax(v[0], -1); }, {x});
  gradcheck([](const V& v) { return ops::softmax(v[0], 1); }, {randn({2, 3, 4}, 20).set_requires_grad()});
  const std::vector<int32_t> labels = {4, 0, 2};
  gradcheck([&](const V& v) { return ops::cross_entropy(v[0], labels); }, {x});
  Tensor target = ops::softmax(randn({3, 5}, 21), 1);
  gradcheck([&](const V& v) { return ops::soft_cross_entropy(v[0], target); }, {x});
  // value: CE = mean(logsumexp(x_i) - x_i[label])
  double ref = 0;
  for (int64_t i = 0; i < 3; ++i) {
    double z = 0;
    for (int64_t k = 0; k < 5; ++k) z += std::exp(double(x.at({i, k})));
    ref += std::log(z) - x.at({i, labels[size_t(i)]});
  }
  CHECK(ops::cross_entropy(x, labels).item() == doctest::Approx(ref / 3).epsilon(1e-6));
  CHECK_THROWS_WITH_AS(ops::cross_entropy(x, {0, 9, 1}), doctest::Contains("index 9"), Error);
}

TEST_CASE("autograd: engine accumulates into leaves, frees the graph, honours no-grad") {
  Tensor w = Tensor::from_vector({2}, {1.0f, 2.0f}).set_requires_grad();
  Tensor y = ops::sum(ops::mul(w, w));  // d/dw = 2w
  autograd::backward(y);
  CHECK(w.grad().to_vector() == std::vector<float>{2, 4});
  autograd::backward(ops::sum(ops::mul_scalar(w, 3.0f)));  // accumulates: 2w + 3
  CHECK(w.grad().to_vector() == std::vector<float>{5, 7});
  CHECK_FALSE(w.grad().requires_grad());
  // a second backward through a freed graph gives no further gradient
  w.zero_grad();
  Tensor z = ops::sum(ops::exp(w));
  autograd::backward(z);
  CHECK(z.grad_fn()->edges.empty());
  {
    autograd::NoGradGuard ng;
    CHECK_FALSE(ops::mul(w, w).requires_grad());
  }
  CHECK_THROWS_AS(autograd::backward(ops::sum(Tensor::zeros({2}))), Error);
  // a shared sub-expression used twice gets both contributions
  Tensor u = Tensor::from_vector({1}, {3.0f}).set_requires_grad();
  Tensor s = ops::square(u);
  autograd::backward(ops::sum(ops::add(s, ops::mul(s, u))));  // u^2 + u^3 -> 2u + 3u^2 = 33
  CHECK(u.grad().item() == doctest::Approx(33.0f));
}
