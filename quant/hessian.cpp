#include "quant/hessian.h"

#include <cmath>

#include "core/autograd/engine.h"
#include "core/error.h"
#include "ops/ops.h"

namespace mpq::quant {

namespace {
uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
}  // namespace

Tensor rademacher(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::zeros(shape);  // [shape]
  float* p = t.data<float>();
  uint64_t s = seed;
  for (int64_t i = 0; i < t.numel(); i += 64) {
    const uint64_t bits = splitmix64(s);
    for (int64_t j = 0; j < 64 && i + j < t.numel(); ++j) p[i + j] = ((bits >> j) & 1u) ? 1.0f : -1.0f;
  }
  return t;
}

HutchinsonResult hutchinson_traces(const Tensor& loss, const std::vector<Tensor>& params,
                                   const HutchinsonOptions& opt) {
  if (!(loss.numel() == 1)) fail("hutchinson: loss must be a scalar, got shape {}", shape_str(loss.shape()));
  check(opt.max_draws >= 1 && opt.min_draws >= 1, "hutchinson: draws must be positive");
  const size_t np = params.size();
  std::vector<Tensor> g = autograd::grad({loss}, params, {}, /*create_graph=*/true, /*retain_graph=*/true);
  HutchinsonResult r;
  r.trace.assign(np, 0.0);
  std::vector<double> sum(np, 0.0), sumsq(np, 0.0);
  uint64_t stream = opt.seed * 0x100000001b3ull + 1;
  for (int d = 1; d <= opt.max_draws; ++d) {
    std::vector<Tensor> v;
    Tensor s;
    {
      autograd::EnableGradGuard on(true);
      for (size_t i = 0; i < np; ++i) {
        v.push_back(rademacher(params[i].shape(), splitmix64(stream)));
        if (!g[i].requires_grad()) continue;
        Tensor t = ops::sum(ops::mul(g[i], v[i]));
        s = s.defined() ? ops::add(s, t) : t;
      }
    }
    std::vector<Tensor> hv;
    if (s.defined()) {
      const bool last = d == opt.max_draws;
      hv = autograd::grad({s}, params, {}, false, /*retain_graph=*/!last);
    }
    double max_move = 0;
    for (size_t i = 0; i < np; ++i) {
      double q = 0;
      if (s.defined()) {
        const Tensor h = hv[i].contiguous();
        const float* ph = h.data<float>();
        const float* pv = v[i].data<float>();
        for (int64_t k = 0; k < h.numel(); ++k) q += double(ph[k]) * double(pv[k]);
      }
      const double prev = d > 1 ? sum[i] / (d - 1) : 0.0;
      sum[i] += q;
      sumsq[i] += q * q;
      const double mean = sum[i] / d;
      if (d > 1) max_move = std::max(max_move, std::fabs(mean - prev) / std::max(std::fabs(mean), 1e-30));
      r.trace[i] = mean;
    }
    r.draws = d;
    if (opt.progress) opt.progress(d, max_move);
    if (d >= opt.min_draws && max_move < opt.rel_tol) {
      r.converged = true;
      break;
    }
  }
  r.std_error.resize(np);
  for (size_t i = 0; i < np; ++i) {
    const double n = r.draws;
    const double var = n > 1 ? std::max(0.0, (sumsq[i] - sum[i] * sum[i] / n) / (n - 1)) : 0.0;
    r.std_error[i] = std::sqrt(var / n);
  }
  return r;
}

}  // namespace mpq::quant
