// Tests of the NN ops: conv2d (+ its differentiable gradient helpers), pooling, batch/layer norm, fold_bn,
// embedding and dropout. Forward values are compared with naive loops written here (conv with the
// reference kernel), first derivatives by finite differences (tests/gradcheck.h), and second derivatives
// either by gradchecking the op's gradient function (create_graph) or by comparing autograd::hvp with
// central differences of autograd gradients.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/autograd/engine.h"
#include "core/error.h"
#include "ops/fold_bn.h"
#include "ops/kernels/f32.h"
#include "ops/ops.h"
#include "tests/gradcheck.h"

namespace mpq {
namespace {

using ops::Conv2dParams;
using ops::Pool2dParams;
using testing::gradcheck;
using testing::GradcheckOptions;
using testing::randn;

Tensor leaf(Tensor t) {
  t.set_requires_grad(true);
  return t;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (float v : t.contiguous().to_vector()) m = std::max(m, double(std::fabs(v)));
  return m;
}

void check_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  REQUIRE_MESSAGE(got.shape() == want.shape(),
                  what << ": shape " << shape_str(got.shape()) << " vs " << shape_str(want.shape()));
  const std::vector<float> a = got.contiguous().to_vector(), b = want.contiguous().to_vector();
  const double scale = std::max(1.0, max_abs(want));
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::fabs(double(a[i]) - double(b[i])) > tol * scale) {
      FAIL_CHECK(what << ": element " << i << " got " << a[i] << " want " << b[i]);
      return;
    }
  }
}

// Gradient of sum(op(x) * u) w.r.t. x, recorded (create_graph) so that it can itself be gradchecked in x
// (when through_x, for ops nonlinear in x) and in u. This checks the op's double-backward rules.
Tensor grad_of(const std::function<Tensor(const Tensor&)>& op, const Tensor& x, const Tensor& u, bool through_x) {
  autograd::EnableGradGuard on(true);
  Tensor X = x;
  if (!through_x) {
    X = x.detach();
    X.set_requires_grad(true);
  }
  Tensor s = ops::sum(ops::mul(op(X), u));
  return autograd::grad({s}, {X}, {}, /*create_graph=*/true)[0];
}

// ------------------------------------------------------------------------------------------------------
// conv2d
struct ConvCase {
  int64_t N, C, H, W, O, KH, KW;
  Conv2dParams p;
  bool bias;
};

std::vector<ConvCase> conv_cases() {
  return {
      {1, 3, 5, 6, 4, 3, 3, Conv2dParams::symmetric(1, 1), true},
      {3, 2, 7, 6, 3, 3, 2, Conv2dParams{2, 2, 0, 1, 2, 1, 1, 1, 1}, true},   // stride 2, asymmetric pad
      {2, 4, 6, 5, 4, 3, 3, Conv2dParams::symmetric(1, 2, 2, 2), false},      // dilation 2, groups 2
      {2, 3, 6, 7, 3, 3, 3, Conv2dParams::symmetric(2, 1, 1, 3), true},       // depthwise, stride 2
      {1, 2, 5, 5, 6, 1, 1, Conv2dParams{2, 1, 0, 0, 0, 0, 1, 1, 2}, false},  // 1x1, stride (2,1), groups 2
      {3, 2, 5, 4, 2, 2, 3, Conv2dParams{1, 2, 1, 0, 0, 2, 2, 1, 1}, true},   // odd kernel, dil (2,1)
  };
}

Shape conv_out_shape(const ConvCase& c) {
  kernels::Conv2dShape s{c.N,           c.C,          c.H,          c.W,         c.O,          c.KH,
                         c.KW,          c.p.stride_h, c.p.stride_w, c.p.pad_top, c.p.pad_left, c.p.pad_bottom,
                         c.p.pad_right, c.p.dil_h,    c.p.dil_w,    c.p.groups};
  return {c.N, c.O, s.OH(), s.OW()};
}

TEST_CASE("conv2d forward matches the reference kernel") {
  uint64_t seed = 10;
  for (const ConvCase& c : conv_cases()) {
    const Tensor x = randn({c.N, c.C, c.H, c.W}, seed++);
    const Tensor w = randn({c.O, c.C / c.p.groups, c.KH, c.KW}, seed++, 0.5f);
    const Tensor b = c.bias ? randn({c.O}, seed++) : Tensor();
    const Tensor y = ops::conv2d(x, w, b, c.p);
    kernels::Conv2dShape s{c.N,           c.C,          c.H,          c.W,         c.O,          c.KH,
                           c.KW,          c.p.stride_h, c.p.stride_w, c.p.pad_top, c.p.pad_left, c.p.pad_bottom,
                           c.p.pad_right, c.p.dil_h,    c.p.dil_w,    c.p.groups};
    Tensor want = Tensor::zeros(conv_out_shape(c));
    kernels::conv2d_fwd_f32_ref(s, x.data<float>(), w.data<float>(), c.bias ? b.data<float>() : nullptr,
                                want.data<float>());
    check_close(y, want, 1e-5, "conv2d forward");
    // non-contiguous input view gives the same result
    check_close(ops::conv2d(x.permute_view({0, 1, 3, 2}).contiguous().permute_view({0, 1, 3, 2}), w, b, c.p), want,
                1e-5, "conv2d forward (strided view)");
  }
}

TEST_CASE("conv2d gradcheck") {
  uint64_t seed = 100;
  for (const ConvCase& c : conv_cases()) {
    CAPTURE(c.N);
    CAPTURE(c.C);
    CAPTURE(c.p.groups);
    const Tensor x = leaf(randn({c.N, c.C, c.H, c.W}, seed++));
    const Tensor w = leaf(randn({c.O, c.C / c.p.groups, c.KH, c.KW}, seed++, 0.5f));
    const Tensor b = c.bias ? leaf(randn({c.O}, seed++)) : Tensor();
    const Conv2dParams p = c.p;
    gradcheck([&](const std::vector<Tensor>& in) { return ops::conv2d(in[0], in[1], in[2], p); }, {x, w, b});
  }
}

TEST_CASE("conv2d_grad_input gradcheck (conv double backward)") {
  uint64_t seed = 200;
  for (const ConvCase& c : conv_cases()) {
    const Shape xs{c.N, c.C, c.H, c.W};
    const Tensor gy = leaf(randn(conv_out_shape(c), seed++));
    const Tensor w = leaf(randn({c.O, c.C / c.p.groups, c.KH, c.KW}, seed++, 0.5f));
    const Conv2dParams p = c.p;
    gradcheck([&](const std::vector<Tensor>& in) { return ops::conv2d_grad_input(in[0], in[1], xs, p); }, {gy, w});
  }
}

TEST_CASE("conv2d_grad_weight gradcheck (conv double backward)") {
  uint64_t seed = 300;
  for (const ConvCase& c : conv_cases()) {
    const Shape ws{c.O, c.C / c.p.groups, c.KH, c.KW};
    const Tensor x = leaf(randn({c.N, c.C, c.H, c.W}, seed++));
    const Tensor gy = leaf(randn(conv_out_shape(c), seed++));
    const Conv2dParams p = c.p;
    gradcheck([&](const std::vector<Tensor>& in) { return ops::conv2d_grad_weight(in[0], in[1], ws, p); }, {x, gy});
  }
}

TEST_CASE("conv2d_grad_input keeps the explicit input size for stride 2") {
  // H = 8 and H = 9 both give OH = 4 with k3 s2 p1; the gradient must have the requested size.
  const Conv2dParams p = Conv2dParams::symmetric(2, 1);
  const Tensor w = randn({2, 3, 3, 3}, 7);
  for (int64_t H : {7, 8}) {
    const Tensor x = leaf(randn({1, 3, H, H}, 8));
    const Tensor y = ops::conv2d(x, w, Tensor(), p);
    CHECK(y.size(2) == 4);
    const Tensor g = autograd::grad({ops::sum(ops::square(y))}, {x})[0];
    CHECK(g.shape() == x.shape());
  }
}

// Smooth two-layer conv net: exact H v (double backward) vs central differences of autograd gradients.
void hvp_vs_fd(const std::function<Tensor(const std::vector<Tensor>&)>& loss, std::vector<Tensor> params,
               uint64_t seed) {
  std::vector<Tensor> v;
  for (size_t i = 0; i < params.size(); ++i) v.push_back(randn(params[i].shape(), seed + i));
  const std::vector<Tensor> hv = autograd::hvp(loss(params), params, v);
  const double eps = 1e-3;
  auto grads_at = [&](double sgn) {
    std::vector<Tensor> ps;
    for (size_t i = 0; i < params.size(); ++i) {
      Tensor q = params[i].clone();
      float* pq = q.data<float>();
      const float* pv = v[i].data<float>();
      for (int64_t j = 0; j < q.numel(); ++j) pq[j] = float(pq[j] + sgn * eps * pv[j]);
      ps.push_back(leaf(q));
    }
    return autograd::grad({loss(ps)}, ps);
  };
  const std::vector<Tensor> gp = grads_at(1.0), gm = grads_at(-1.0);
  for (size_t i = 0; i < params.size(); ++i) {
    const std::vector<float> h = hv[i].contiguous().to_vector(), a = gp[i].to_vector(), b = gm[i].to_vector();
    double scale = 0;
    for (float x : h) scale = std::max(scale, double(std::fabs(x)));
    REQUIRE(scale > 0);
    for (size_t j = 0; j < h.size(); ++j) {
      const double fd = (double(a[j]) - double(b[j])) / (2 * eps);
      if (std::fabs(fd - h[j]) > 1e-3 * scale + 1e-5) {
        FAIL_CHECK("hvp param " << i << " element " << j << ": double backward " << h[j] << " vs fd " << fd
                                << " (scale " << scale << ")");
        break;
      }
    }
  }
}

TEST_CASE("conv2d double backward: hvp matches finite differences of gradients") {
  const Conv2dParams p1 = Conv2dParams{1, 1, 1, 0, 1, 2, 1, 1, 1};  // asymmetric pad
  const Conv2dParams p2 = Conv2dParams::symmetric(2, 1, 1, 2);      // stride 2, groups 2
  auto loss = [&](const std::vector<Tensor>& q) {
    Tensor y1 = ops::conv2d(q[0], q[1], q[2], p1);  // [2, 4, 7, 6]
    Tensor h = ops::mul_scalar(ops::square(y1), 0.3f);
    Tensor y2 = ops::conv2d(ops::add(h, y1), q[3], Tensor(), p2);  // [2, 4, 4, 3]
    return ops::mul_scalar(ops::sum(ops::square(y2)), 0.05f);
  };
  hvp_vs_fd(loss,
            {leaf(randn({2, 3, 6, 6}, 1, 0.7f)), leaf(randn({4, 3, 2, 3}, 2, 0.3f)), leaf(randn({4}, 3, 0.1f)),
             leaf(randn({4, 2, 3, 3}, 4, 0.3f))},
            50);
}

TEST_CASE("conv2d second derivatives by gradcheck of the gradient") {
  const Conv2dParams p{2, 1, 1, 0, 0, 1, 1, 2, 1};
  const Tensor w = leaf(randn({3, 2, 2, 2}, 5, 0.5f));
  const Tensor x = leaf(randn({2, 2, 6, 5}, 6));
  const Tensor u = leaf(randn({2, 3, 3, 4}, 7));  // [N, O, OH, OW]
  // d/dx sum(conv(x, w) * u) = grad_input(u, w) as a function of (w, u);
  // d/dw sum(conv(x, w) * u) = grad_weight(x, u) as a function of (x, u)
  gradcheck(
      [&](const std::vector<Tensor>& in) {
        return grad_of([&](const Tensor& t) { return ops::conv2d(t, in[0], Tensor(), p); }, x.detach(), in[1], false);
      },
      {w, u});
  gradcheck(
      [&](const std::vector<Tensor>& in) {
        return grad_of([&](const Tensor& t) { return ops::conv2d(in[0], t, Tensor(), p); }, w.detach(), in[1], false);
      },
      {x, u});
}

TEST_CASE("conv2d shape errors name both shapes") {
  const Tensor x = randn({1, 3, 8, 8}, 1), w = randn({4, 2, 3, 3}, 2);
  try {
    ops::conv2d(x, w, Tensor(), Conv2dParams{});
    FAIL("no throw");
  } catch (const Error& e) {
    const std::string m = e.what();
    CHECK(m.find("[1, 3, 8, 8]") != std::string::npos);
    CHECK(m.find("[4, 2, 3, 3]") != std::string::npos);
    CHECK(m.find("groups=1") != std::string::npos);
  }
  CHECK_THROWS_AS(ops::conv2d(x, randn({4, 3, 3, 3}, 3), randn({5}, 4), Conv2dParams{}), Error);
  CHECK_THROWS_AS(ops::conv2d(x, randn({4, 3, 9, 9}, 3), Tensor(), Conv2dParams{}), Error);
  CHECK_THROWS_AS(ops::conv2d(randn({3, 8, 8}, 1), w, Tensor(), Conv2dParams{}), Error);
  try {
    ops::conv2d_grad_input(randn({1, 4, 5, 5}, 1), randn({4, 3, 3, 3}, 2), {1, 3, 8, 8}, Conv2dParams{});
    FAIL("no throw");
  } catch (const Error& e) {
    const std::string m = e.what();
    CHECK(m.find("[1, 4, 5, 5]") != std::string::npos);
    CHECK(m.find("[1, 3, 8, 8]") != std::string::npos);
  }
  CHECK_THROWS_AS(ops::conv2d_grad_weight(x, randn({1, 4, 5, 5}, 1), {4, 3, 3, 3}, Conv2dParams{}), Error);
}

// ------------------------------------------------------------------------------------------------------
// pooling

// Shuffled, well-separated values so that finite differences never cross an argmax switch.
Tensor distinct(const Shape& s, uint64_t seed) {
  Tensor t = Tensor::zeros(s);
  std::vector<int64_t> perm(size_t(t.numel()));
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(perm.begin(), perm.end(), rng);
  for (int64_t i = 0; i < t.numel(); ++i) t.set_flat(i, float(perm[size_t(i)] - t.numel() / 2) * 0.05f);
  return t;
}

Tensor naive_pool(const Tensor& x, const Pool2dParams& p, bool is_max) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = (H + p.pad_top + p.pad_bottom - p.kernel_h) / p.stride_h + 1;
  const int64_t OW = (W + p.pad_left + p.pad_right - p.kernel_w) / p.stride_w + 1;
  Tensor y = Tensor::zeros({N, C, OH, OW});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = is_max ? -1e30 : 0;
          int64_t cnt = 0;
          for (int64_t kh = 0; kh < p.kernel_h; ++kh)
            for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
              const int64_t h = oh * p.stride_h - p.pad_top + kh, w = ow * p.stride_w - p.pad_left + kw;
              if (h < 0 || h >= H || w < 0 || w >= W) continue;
              const double v = x.at({n, c, h, w});
              acc = is_max ? std::max(acc, v) : acc + v;
              ++cnt;
            }
          if (!is_max) acc /= p.count_include_pad ? double(p.kernel_h * p.kernel_w) : double(cnt);
          y.set_flat(((n * C + c) * OH + oh) * OW + ow, float(acc));
        }
  return y;
}

std::vector<Pool2dParams> pool_cases() {
  return {
      {2, 2, 2, 2, 0, 0, 0, 0, false}, {3, 3, 2, 2, 1, 1, 1, 1, false},
      {3, 3, 2, 2, 1, 1, 1, 1, true},  {3, 2, 1, 2, 0, 1, 2, 0, false},  // asymmetric padding
      {3, 2, 1, 2, 0, 1, 2, 0, true},  {2, 3, 3, 1, 1, 0, 0, 1, false},
  };
}

TEST_CASE("max_pool2d and avg_pool2d forward match naive loops") {
  uint64_t seed = 400;
  for (const Pool2dParams& p : pool_cases()) {
    const Tensor x = randn({3, 2, 7, 6}, seed++);
    check_close(ops::max_pool2d(x, p), naive_pool(x, p, true), 1e-6, "max_pool2d");
    check_close(ops::avg_pool2d(x, p), naive_pool(x, p, false), 1e-6, "avg_pool2d");
  }
}

TEST_CASE("max_pool2d and avg_pool2d gradcheck, first and second order") {
  uint64_t seed = 500;
  GradcheckOptions fine;
  fine.eps_rel = 1e-3;
  for (const Pool2dParams& p : pool_cases()) {
    const Tensor x = leaf(distinct({1, 2, 7, 5}, seed++));
    gradcheck([&](const std::vector<Tensor>& in) { return ops::max_pool2d(in[0], p); }, {x}, fine);
    const Tensor x3 = leaf(randn({3, 2, 5, 6}, seed++));
    gradcheck([&](const std::vector<Tensor>& in) { return ops::avg_pool2d(in[0], p); }, {x3});
    // backward-of-backward: the gradient sum(pool(x) * u) w.r.t. x is linear in u
    const Tensor u_max = leaf(randn(ops::max_pool2d(x.detach(), p).shape(), seed++));
    gradcheck(
        [&](const std::vector<Tensor>& in) {
          return grad_of([&](const Tensor& t) { return ops::max_pool2d(t, p); }, x.detach(), in[0], false);
        },
        {u_max});
    const Tensor u_avg = leaf(randn(ops::avg_pool2d(x3.detach(), p).shape(), seed++));
    gradcheck(
        [&](const std::vector<Tensor>& in) {
          return grad_of([&](const Tensor& t) { return ops::avg_pool2d(t, p); }, x3.detach(), in[0], false);
        },
        {u_avg});
  }
}

TEST_CASE("global_avg_pool forward and gradcheck") {
  const Tensor x = leaf(randn({3, 4, 5, 3}, 600));
  const Tensor y = ops::global_avg_pool(x);
  REQUIRE(y.shape() == Shape{3, 4});
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t c = 0; c < 4; ++c) {
      double s = 0;
      for (int64_t h = 0; h < 5; ++h)
        for (int64_t w = 0; w < 3; ++w) s += x.at({n, c, h, w});
      CHECK(y.at({n, c}) == doctest::Approx(s / 15).epsilon(1e-5));
    }
  gradcheck([](const std::vector<Tensor>& in) { return ops::global_avg_pool(in[0]); }, {x});
  CHECK_THROWS_AS(ops::max_pool2d(randn({2, 5, 5}, 1), Pool2dParams{}), Error);
  CHECK_THROWS_AS(ops::avg_pool2d(randn({1, 1, 2, 2}, 1), Pool2dParams{3, 3, 1, 1}), Error);
}

// ------------------------------------------------------------------------------------------------------
// normalisation

Tensor naive_bn(const Tensor& x, const std::vector<float>& m, const std::vector<float>& v, const Tensor& g,
                const Tensor& b, float eps) {
  Tensor y = Tensor::zeros(x.shape());
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) {
          double r = (x.at({n, c, h, w}) - m[size_t(c)]) / std::sqrt(double(v[size_t(c)]) + eps);
          if (g.defined()) r = r * g.flat(c) + b.flat(c);
          y.set_flat(((n * C + c) * H + h) * W + w, float(r));
        }
  return y;
}

void naive_stats(const Tensor& x, std::vector<float>& m, std::vector<float>& v) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  m.assign(size_t(C), 0);
  v.assign(size_t(C), 0);
  for (int64_t c = 0; c < C; ++c) {
    double s = 0, s2 = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) s += x.at({n, c, h, w});
    const double mu = s / double(N * H * W);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) s2 += (x.at({n, c, h, w}) - mu) * (x.at({n, c, h, w}) - mu);
    m[size_t(c)] = float(mu);
    v[size_t(c)] = float(s2 / double(N * H * W));
  }
}

TEST_CASE("batch_norm training forward, running stats and gradcheck") {
  const Tensor x = leaf(ops::add_scalar(randn({3, 4, 5, 3}, 700, 2.0f), 1.5f).detach());
  const Tensor g = leaf(randn({4}, 701)), b = leaf(randn({4}, 702));
  std::vector<float> m, v;
  naive_stats(x, m, v);
  const Tensor want = naive_bn(x, m, v, g, b, 1e-5f);
  Tensor rm = Tensor::zeros({4}), rv = Tensor::full({4}, 1.0f);
  {
    const Tensor y = ops::batch_norm(x, g, b, rm, rv, true, 0.1f, 1e-5f);  // composed (records)
    check_close(y, want, 2e-5, "batch_norm train (composed)");
  }
  for (int64_t c = 0; c < 4; ++c) {
    CHECK(rm.flat(c) == doctest::Approx(0.1 * m[size_t(c)]).epsilon(1e-5));
    CHECK(rv.flat(c) == doctest::Approx(0.9 + 0.1 * v[size_t(c)] * 45.0 / 44.0).epsilon(1e-5));
  }
  {
    autograd::NoGradGuard ng;
    check_close(ops::batch_norm(x, g, b, rm, rv, true, 0.1f, 1e-5f), want, 2e-5, "batch_norm train (fused)");
    Tensor none;
    check_close(ops::batch_norm(x, none, none, none, none, true, 0.1f, 1e-5f), naive_bn(x, m, v, {}, {}, 1e-5f), 2e-5,
                "batch_norm train without affine / running stats");
  }
  gradcheck(
      [&](const std::vector<Tensor>& in) { return ops::batch_norm(in[0], in[1], in[2], rm, rv, true, 0.1f, 1e-5f); },
      {x, g, b});
  // second order: d/dx sum(bn(x) * u) as a function of (x, u)
  const Tensor x2 = leaf(randn({2, 2, 3, 3}, 703));
  const Tensor u = leaf(randn({2, 2, 3, 3}, 704));
  const Tensor g2 = randn({2}, 705), b2 = randn({2}, 706);
  {
    // the create_graph backward (composed ops) and the fused first-order backward agree
    auto bn = [&](const Tensor& t) {
      Tensor r1, r2;
      return ops::batch_norm(t, g2, b2, r1, r2, true, 0.1f, 1e-5f);
    };
    const Tensor composed = grad_of(bn, x2, u, true);
    const Tensor fused = autograd::grad({ops::sum(ops::mul(bn(x2), u))}, {x2})[0];
    check_close(composed, fused, 1e-5, "batch_norm backward, create_graph vs fused");
  }
  gradcheck(
      [&](const std::vector<Tensor>& in) {
        return grad_of(
            [&](const Tensor& t) {
              Tensor r1, r2;
              return ops::batch_norm(t, g2, b2, r1, r2, true, 0.1f, 1e-5f);
            },
            in[0], in[1], true);
      },
      {x2, u});
}

TEST_CASE("batch_norm training double backward: hvp matches finite differences of gradients") {
  const Conv2dParams p = Conv2dParams::symmetric(1, 1);
  auto loss = [&](const std::vector<Tensor>& q) {
    Tensor r1, r2;
    Tensor h = ops::batch_norm(ops::conv2d(q[0], q[1], Tensor(), p), q[2], q[3], r1, r2, true, 0.1f, 1e-5f);
    Tensor z = ops::mul(h, randn(h.shape(), 77));  // fixed random probe so the loss is not symmetric
    return ops::sum(ops::mul(ops::square(z), ops::add_scalar(ops::mul_scalar(h, 0.2f), 1.0f)));
  };
  hvp_vs_fd(
      loss,
      {leaf(randn({3, 2, 4, 5}, 61)), leaf(randn({3, 2, 3, 3}, 62, 0.4f)), leaf(randn({3}, 63)), leaf(randn({3}, 64))},
      65);
}

TEST_CASE("batch_norm eval forward and gradcheck") {
  const Tensor x = leaf(randn({2, 3, 4, 3}, 800));
  const Tensor g = leaf(randn({3}, 801)), b = leaf(randn({3}, 802));
  Tensor rm = randn({3}, 803), rv = testing::uniform({3}, 804, 0.5f, 2.0f);
  const std::vector<float> m = rm.to_vector(), v = rv.to_vector();
  const Tensor want = naive_bn(x, m, v, g, b, 1e-3f);
  check_close(ops::batch_norm(x, g, b, rm, rv, false, 0.1f, 1e-3f), want, 1e-5, "batch_norm eval");
  {
    autograd::NoGradGuard ng;
    check_close(ops::batch_norm(x, g, b, rm, rv, false, 0.1f, 1e-3f), want, 1e-5, "batch_norm eval (fused)");
  }
  CHECK(rm.to_vector() == m);  // eval leaves running stats alone
  gradcheck(
      [&](const std::vector<Tensor>& in) { return ops::batch_norm(in[0], in[1], in[2], rm, rv, false, 0.1f, 1e-3f); },
      {x, g, b});
  Tensor bad = Tensor::zeros({4});
  try {
    ops::batch_norm(x, bad, b, rm, rv, false, 0.1f, 1e-3f);
    FAIL("no throw");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("[4]") != std::string::npos);
    CHECK(msg.find("[2, 3, 4, 3]") != std::string::npos);
  }
}

TEST_CASE("batch_norm eval double backward: hvp matches finite differences of gradients") {
  const Conv2dParams p = Conv2dParams::symmetric(2, 1);
  Tensor rm = randn({3}, 71), rv = testing::uniform({3}, 72, 0.5f, 2.0f);
  auto loss = [&](const std::vector<Tensor>& q) {
    Tensor h = ops::batch_norm(ops::conv2d(q[0], q[1], Tensor(), p), q[2], q[3], rm, rv, false, 0.1f, 1e-5f);
    return ops::sum(ops::mul(ops::square(h), ops::add_scalar(ops::mul_scalar(h, 0.2f), 1.0f)));
  };
  hvp_vs_fd(
      loss,
      {leaf(randn({2, 2, 5, 4}, 73)), leaf(randn({3, 2, 3, 3}, 74, 0.4f)), leaf(randn({3}, 75)), leaf(randn({3}, 76))},
      77);
}

TEST_CASE("fold_bn: conv + eval batch_norm equals the folded conv") {
  const Conv2dParams p = Conv2dParams::symmetric(2, 1, 1, 2);
  const Tensor x = randn({2, 4, 9, 7}, 900);
  const Tensor w = randn({6, 2, 3, 3}, 901, 0.5f), b = randn({6}, 902);
  Tensor g = randn({6}, 903), beta = randn({6}, 904), rm = randn({6}, 905), rv = testing::uniform({6}, 906, 0.3f, 3.0f);
  const Tensor ref = ops::batch_norm(ops::conv2d(x, w, b, p), g, beta, rm, rv, false, 0.1f, 1e-5f);
  const ops::FoldedConv f = ops::fold_bn(w, b, g, beta, rm, rv, 1e-5f);
  check_close(ops::conv2d(x, f.weight, f.bias, p), ref, 1e-5, "folded conv");
  const ops::FoldedConv f2 = ops::fold_bn(w, Tensor(), g, beta, rm, rv, 1e-5f);
  const Tensor ref2 = ops::batch_norm(ops::conv2d(x, w, Tensor(), p), g, beta, rm, rv, false, 0.1f, 1e-5f);
  check_close(ops::conv2d(x, f2.weight, f2.bias, p), ref2, 1e-5, "folded conv without bias");
  CHECK_THROWS_AS(ops::fold_bn(w, b, randn({5}, 1), beta, rm, rv, 1e-5f), Error);
}

TEST_CASE("layer_norm forward and gradcheck, first and second order") {
  const Tensor x = leaf(randn({2, 3, 7}, 1000, 1.5f));
  const Tensor g = leaf(randn({7}, 1001)), b = leaf(randn({7}, 1002));
  Tensor want = Tensor::zeros(x.shape());
  for (int64_t r = 0; r < 6; ++r) {
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < 7; ++i) s += x.flat(r * 7 + i);
    const double mu = s / 7;
    for (int64_t i = 0; i < 7; ++i) s2 += (x.flat(r * 7 + i) - mu) * (x.flat(r * 7 + i) - mu);
    for (int64_t i = 0; i < 7; ++i)
      want.set_flat(r * 7 + i, float((x.flat(r * 7 + i) - mu) / std::sqrt(s2 / 7 + 1e-5) * g.flat(i) + b.flat(i)));
  }
  check_close(ops::layer_norm(x, g, b, 1e-5f), want, 2e-5, "layer_norm (composed)");
  {
    autograd::NoGradGuard ng;
    check_close(ops::layer_norm(x, g, b, 1e-5f), want, 2e-5, "layer_norm (fused)");
  }
  gradcheck([](const std::vector<Tensor>& in) { return ops::layer_norm(in[0], in[1], in[2], 1e-5f); }, {x, g, b});
  const Tensor u = leaf(randn(x.shape(), 1003));
  {
    // the create_graph backward (composed ops) and the fused first-order backward agree, for x and gamma
    const Tensor xl = leaf(x.detach().clone()), gl = leaf(g.detach().clone());
    auto ln = [&] { return ops::sum(ops::mul(ops::layer_norm(xl, gl, Tensor(), 1e-5f), u.detach())); };
    const std::vector<Tensor> fused = autograd::grad({ln()}, {xl, gl});
    autograd::EnableGradGuard on(true);
    const std::vector<Tensor> composed = autograd::grad({ln()}, {xl, gl}, {}, /*create_graph=*/true);
    check_close(composed[0], fused[0], 1e-5, "layer_norm dx, create_graph vs fused");
    check_close(composed[1], fused[1], 1e-5, "layer_norm dgamma, create_graph vs fused");
  }
  gradcheck(
      [&](const std::vector<Tensor>& in) {
        return grad_of([&](const Tensor& t) { return ops::layer_norm(t, g.detach(), Tensor(), 1e-5f); }, in[0], in[1],
                       true);
      },
      {leaf(x.detach().clone()), u});
  CHECK_THROWS_AS(ops::layer_norm(x, randn({6}, 1), b, 1e-5f), Error);
}

// ------------------------------------------------------------------------------------------------------
// embedding and dropout

TEST_CASE("embedding forward, gradcheck and double backward") {
  const Tensor w = leaf(randn({5, 3}, 1100));
  const std::vector<int32_t> ids{4, 0, 2, 2, 1, 4};
  const Tensor y = ops::embedding(w, ids, {2, 3});
  REQUIRE(y.shape() == Shape{2, 3, 3});
  for (size_t i = 0; i < ids.size(); ++i)
    for (int64_t d = 0; d < 3; ++d) CHECK(y.flat(int64_t(i) * 3 + d) == w.at({ids[i], d}));
  gradcheck([&](const std::vector<Tensor>& in) { return ops::embedding(in[0], ids, {2, 3}); }, {w});
  const Tensor u = leaf(randn({2, 3, 3}, 1101));
  gradcheck(
      [&](const std::vector<Tensor>& in) {
        return grad_of([&](const Tensor& t) { return ops::embedding(t, ids, {2, 3}); }, w.detach(), in[0], false);
      },
      {u});
  try {
    ops::embedding(w, {1, 7}, {2});
    FAIL("no throw");
  } catch (const Error& e) {
    const std::string m = e.what();
    CHECK(m.find("7") != std::string::npos);
    CHECK(m.find("V=5") != std::string::npos);
  }
  CHECK_THROWS_AS(ops::embedding(w, {1, 2, 3}, {2}), Error);
}

TEST_CASE("dropout: inverted scaling, seeded mask, gradcheck") {
  const Tensor x = leaf(randn({4, 50}, 1200));
  const Tensor y1 = ops::dropout(x, 0.3f, true, 42), y2 = ops::dropout(x, 0.3f, true, 42);
  const Tensor y3 = ops::dropout(x, 0.3f, true, 43);
  CHECK(y1.to_vector() == y2.to_vector());
  CHECK(y1.to_vector() != y3.to_vector());
  int64_t kept = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (y1.flat(i) != 0.0f) {
      ++kept;
      CHECK(y1.flat(i) == doctest::Approx(x.flat(i) / 0.7f).epsilon(1e-6));
    }
  }
  CHECK(kept > 110);
  CHECK(kept < 170);
  CHECK(ops::dropout(x, 0.3f, false, 42).to_vector() == x.to_vector());
  CHECK(ops::dropout(x, 0.0f, true, 42).to_vector() == x.to_vector());
  for (float v : ops::dropout(x, 1.0f, true, 42).to_vector()) CHECK(v == 0.0f);
  gradcheck([](const std::vector<Tensor>& in) { return ops::dropout(in[0], 0.5f, true, 7); }, {x});
  CHECK_THROWS_AS(ops::dropout(x, 1.5f, true, 1), Error);
}

}  // namespace
}  // namespace mpq
