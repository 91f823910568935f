// Hessian-vector products against the explicit Hessian, and Hutchinson traces against its exact trace.
//
// The reference is independent of our autograd: each test network is also written out by hand in double
// precision (forward and analytic gradient), and the explicit Hessian is built column by column from
// central finite differences of that double-precision gradient (step 1e-5: truncation ~1e-10, rounding
// ~1e-11). Our f32 HVPs must match H v to 1e-4 relative (in the 2-norm).
#include <doctest/doctest.h>

#include <cmath>
#include <functional>

#include "core/autograd/engine.h"
#include "ops/ops.h"
#include "quant/hessian.h"
#include "tests/gradcheck.h"

using namespace mpq;
using mpq::testing::randn;

namespace {

using GradFn = std::function<std::vector<double>(const std::vector<double>&)>;

std::vector<std::vector<double>> explicit_hessian(const GradFn& grad, const std::vector<double>& p) {
  const size_t n = p.size();
  std::vector<std::vector<double>> H(n, std::vector<double>(n));
  const double h = 1e-5;
  for (size_t j = 0; j < n; ++j) {
    auto pp = p, pm = p;
    pp[j] += h;
    pm[j] -= h;
    const auto gp = grad(pp), gm = grad(pm);
    for (size_t i = 0; i < n; ++i) H[i][j] = (gp[i] - gm[i]) / (2 * h);
  }
  return H;
}

std::vector<double> flatten(const std::vector<Tensor>& ts) {
  std::vector<double> r;
  for (const auto& t : ts)
    for (float v : t.to_vector()) r.push_back(v);
  return r;
}

// softmax cross-entropy in double: returns mean loss, writes dL/dz into dz ([N, C] row-major)
double ce_double(const std::vector<double>& z, const std::vector<int>& y, int N, int C, std::vector<double>& dz) {
  dz.assign(size_t(N * C), 0);
  double loss = 0;
  for (int i = 0; i < N; ++i) {
    double mx = -1e300, s = 0;
    for (int k = 0; k < C; ++k) mx = std::max(mx, z[size_t(i * C + k)]);
    for (int k = 0; k < C; ++k) s += std::exp(z[size_t(i * C + k)] - mx);
    loss += std::log(s) + mx - z[size_t(i * C + y[size_t(i)])];
    for (int k = 0; k < C; ++k)
      dz[size_t(i * C + k)] = (std::exp(z[size_t(i * C + k)] - mx) / s - (k == y[size_t(i)] ? 1 : 0)) / N;
  }
  return loss / N;
}

void check_hvp(const std::vector<Tensor>& params, const std::function<Tensor()>& loss_fn,
               const std::vector<std::vector<double>>& H) {
  const size_t n = H.size();
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    std::vector<Tensor> v;
    for (size_t i = 0; i < params.size(); ++i) v.push_back(randn(params[i].shape(), 100 * seed + i));
    const auto hv = flatten(autograd::hvp(loss_fn(), params, v));
    const auto vf = flatten(v);
    REQUIRE(hv.size() == n);
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
      double ref = 0;
      for (size_t j = 0; j < n; ++j) ref += H[i][j] * vf[j];
      num += (hv[i] - ref) * (hv[i] - ref);
      den += ref * ref;
    }
    CAPTURE(seed);
    CHECK(den > 1e-6);  // a non-trivial Hessian
    CHECK(std::sqrt(num / den) < 1e-4);
  }
}

// ---- a small MLP: x [N, 5] -> linear 5->6 -> tanh -> linear 6->3 -> cross-entropy ----
struct Mlp {
  static constexpr int N = 4, I = 5, Hd = 6, C = 3;
  Tensor x = randn({N, I}, 1);
  std::vector<int32_t> y = {0, 2, 1, 2};
  std::vector<Tensor> params = {randn({Hd, I}, 2, 0.7f).set_requires_grad(), randn({Hd}, 3).set_requires_grad(),
                                randn({C, Hd}, 4, 0.7f).set_requires_grad(), randn({C}, 5).set_requires_grad()};
  Tensor loss() const {
    Tensor h = ops::tanh(ops::linear(x, params[0], params[1]));
    return ops::cross_entropy(ops::linear(h, params[2], params[3]), y);
  }
  // double-precision analytic gradient over the flattened params (W1, b1, W2, b2)
  std::vector<double> grad(const std::vector<double>& p) const {
    const double* W1 = p.data();
    const double* b1 = W1 + Hd * I;
    const double* W2 = b1 + Hd;
    const double* b2 = W2 + C * Hd;
    const auto xv = x.to_vector();
    std::vector<double> h(N * Hd), z(N * C), dz;
    for (int n = 0; n < N; ++n)
      for (int j = 0; j < Hd; ++j) {
        double a = b1[j];
        for (int i = 0; i < I; ++i) a += W1[j * I + i] * xv[size_t(n * I + i)];
        h[size_t(n * Hd + j)] = std::tanh(a);
      }
    for (int n = 0; n < N; ++n)
      for (int c = 0; c < C; ++c) {
        double a = b2[c];
        for (int j = 0; j < Hd; ++j) a += W2[c * Hd + j] * h[size_t(n * Hd + j)];
        z[size_t(n * C + c)] = a;
      }
    ce_double(z, {y.begin(), y.end()}, N, C, dz);
    std::vector<double> g(p.size(), 0);
    double* gW1 = g.data();
    double* gb1 = gW1 + Hd * I;
    double* gW2 = gb1 + Hd;
    double* gb2 = gW2 + C * Hd;
    for (int n = 0; n < N; ++n) {
      for (int c = 0; c < C; ++c) {
        gb2[c] += dz[size_t(n * C + c)];
        for (int j = 0; j < Hd; ++j) gW2[c * Hd + j] += dz[size_t(n * C + c)] * h[size_t(n * Hd + j)];
      }
      for (int j = 0; j < Hd; ++j) {
        double dh = 0;
        for (int c = 0; c < C; ++c) dh += dz[size_t(n * C + c)] * W2[c * Hd + j];
        const double da = dh * (1 - h[size_t(n * Hd + j)] * h[size_t(n * Hd + j)]);
        gb1[j] += da;
        for (int i = 0; i < I; ++i) gW1[j * I + i] += da * xv[size_t(n * I + i)];
      }
    }
    return g;
  }
};

// ---- a small conv net: x [2,2,5,5] -> conv 3x3 pad 1 (2->3) -> tanh -> mean over H,W -> linear 3->2 -> CE ----
struct ConvNet {
  static constexpr int N = 2, Ci = 2, S = 5, Co = 3, K = 3, C = 2;
  Tensor x = randn({N, Ci, S, S}, 11);
  std::vector<int32_t> y = {1, 0};
  std::vector<Tensor> params = {randn({Co, Ci, K, K}, 12, 0.4f).set_requires_grad(),
                                randn({Co}, 13, 0.5f).set_requires_grad(), randn({C, Co}, 14).set_requires_grad(),
                                randn({C}, 15).set_requires_grad()};
  Tensor loss() const {
    Tensor a = ops::conv2d(x, params[0], params[1], ops::Conv2dParams::symmetric(1, 1));
    Tensor m = ops::mean(ops::tanh(a), {2, 3}, false);
    return ops::cross_entropy(ops::linear(m, params[2], params[3]), y);
  }
  std::vector<double> grad(const std::vector<double>& p) const {
    const double* W = p.data();
    const double* bc = W + Co * Ci * K * K;
    const double* V = bc + Co;
    const double* d = V + C * Co;
    const auto xv = x.to_vector();
    auto X = [&](int n, int c, int i, int j) {
      return (i < 0 || j < 0 || i >= S || j >= S) ? 0.0 : double(xv[size_t(((n * Ci + c) * S + i) * S + j)]);
    };
    std::vector<double> h(N * Co * S * S), m(N * Co, 0), z(N * C), dz;
    for (int n = 0; n < N; ++n)
      for (int o = 0; o < Co; ++o)
        for (int i = 0; i < S; ++i)
          for (int j = 0; j < S; ++j) {
            double a = bc[o];
            for (int c = 0; c < Ci; ++c)
              for (int ki = 0; ki < K; ++ki)
                for (int kj = 0; kj < K; ++kj)
                  a += W[((o * Ci + c) * K + ki) * K + kj] * X(n, c, i + ki - 1, j + kj - 1);
            h[size_t(((n * Co + o) * S + i) * S + j)] = std::tanh(a);
            m[size_t(n * Co + o)] += std::tanh(a) / (S * S);
          }
    for (int n = 0; n < N; ++n)
      for (int c = 0; c < C; ++c) {
        double a = d[c];
        for (int o = 0; o < Co; ++o) a += V[c * Co + o] * m[size_t(n * Co + o)];
        z[size_t(n * C + c)] = a;
      }
    ce_double(z, {y.begin(), y.end()}, N, C, dz);
    std::vector<double> g(p.size(), 0);
    double* gW = g.data();
    double* gbc = gW + Co * Ci * K * K;
    double* gV = gbc + Co;
    double* gd = gV + C * Co;
    for (int n = 0; n < N; ++n)
      for (int c = 0; c < C; ++c) {
        gd[c] += dz[size_t(n * C + c)];
        for (int o = 0; o < Co; ++o) gV[c * Co + o] += dz[size_t(n * C + c)] * m[size_t(n * Co + o)];
      }
    for (int n = 0; n < N; ++n)
      for (int o = 0; o < Co; ++o) {
        double dm = 0;
        for (int c = 0; c < C; ++c) dm += dz[size_t(n * C + c)] * V[c * Co + o];
        for (int i = 0; i < S; ++i)
          for (int j = 0; j < S; ++j) {
            const double hv = h[size_t(((n * Co + o) * S + i) * S + j)];
            const double da = dm / (S * S) * (1 - hv * hv);
            gbc[o] += da;
            for (int c = 0; c < Ci; ++c)
              for (int ki = 0; ki < K; ++ki)
                for (int kj = 0; kj < K; ++kj)
                  gW[((o * Ci + c) * K + ki) * K + kj] += da * X(n, c, i + ki - 1, j + kj - 1);
          }
      }
    return g;
  }
};

}  // namespace

TEST_CASE("hvp: small MLP, exact Hessian-vector products equal the explicit Hessian") {
  Mlp net;
  const auto p = flatten(net.params);
  // the double-precision reference gradient agrees with autograd's first-order gradient
  auto g = autograd::grad({net.loss()}, net.params);
  const auto gref = net.grad(p), gf = flatten(g);
  for (size_t i = 0; i < p.size(); ++i) CHECK(gf[i] == doctest::Approx(gref[i]).epsilon(1e-4).scale(1e-3));
  check_hvp(
      net.params, [&] { return net.loss(); }, explicit_hessian([&](auto& q) { return net.grad(q); }, p));
}

TEST_CASE("hvp: small conv net, exact Hessian-vector products equal the explicit Hessian") {
  ConvNet net;
  const auto p = flatten(net.params);
  check_hvp(
      net.params, [&] { return net.loss(); }, explicit_hessian([&](auto& q) { return net.grad(q); }, p));
}

TEST_CASE("hutchinson: per-block trace estimates converge to the exact traces within their standard error") {
  Mlp net;
  const auto p = flatten(net.params);
  const auto H = explicit_hessian([&](auto& q) { return net.grad(q); }, p);
  quant::HutchinsonOptions opt;
  opt.rel_tol = 1e-4;
  opt.min_draws = 50;
  opt.max_draws = 400;
  opt.seed = 7;
  const auto r = quant::hutchinson_traces(net.loss(), net.params, opt);
  size_t at = 0;
  for (size_t b = 0; b < net.params.size(); ++b) {
    double exact = 0;
    for (int64_t k = 0; k < net.params[b].numel(); ++k, ++at) exact += H[at][at];
    CAPTURE(b);
    CAPTURE(exact);
    CAPTURE(r.trace[b]);
    CAPTURE(r.std_error[b]);
    // 4 standard errors: a fixed seed makes this deterministic; the bound is what the estimator promises
    CHECK(std::fabs(r.trace[b] - exact) <= 4 * r.std_error[b] + 1e-6);
  }
  CHECK(r.draws >= 50);
  // biases: v_i^T H_ii v_i for a bias block whose Hessian is diagonal-dominant still varies; but the
  // estimator must not be degenerate
  double total_se = 0;
  for (double s : r.std_error) total_se += s;
  CHECK(total_se > 0);
}
