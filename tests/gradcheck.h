// Finite-difference gradient checker for the differentiable ops.
//
// For an op f(inputs) -> out, the scalar probe is L = sum(out * R) with a fixed random R, so every output
// element contributes. The reference gradient is the central difference (L(x + e) - L(x - e)) / 2e for each
// input element, with L accumulated in double precision from the f32 outputs. Central differences have
// O(e^2) truncation error and O(ulp / e) rounding error; e = 1e-2 * max(1, |x|) keeps both near 1e-4
// relative on the smooth test inputs, so the tolerance below (2e-3 relative to the gradient's scale) fails
// on any real error in a backward rule while passing the f32 noise.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "core/autograd/engine.h"
#include "core/tensor.h"
#include "ops/ops.h"

namespace mpq::testing {

inline Tensor randn(const Shape& shape, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  Tensor t = Tensor::zeros(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = d(rng);
  return t;
}

inline Tensor uniform(const Shape& shape, uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  Tensor t = Tensor::zeros(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = d(rng);
  return t;
}

struct GradcheckOptions {
  double eps_rel = 1e-2;
  double rtol = 2e-3;  // relative to the largest |reference gradient| of that input
  double atol = 1e-4;
  uint64_t seed = 1234;
};

// Checks d/d(inputs[i]) of f for every input that requires grad. `f` must be deterministic.
inline void gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                      const GradcheckOptions& opt = {}) {
  for (auto& t : inputs)
    if (t.requires_grad()) t.zero_grad();
  Tensor out = f(inputs);
  const Tensor R = randn(out.shape(), opt.seed);
  autograd::backward(ops::sum(ops::mul(out, R)));

  auto probe = [&]() {
    autograd::NoGradGuard ng;
    Tensor o = f(inputs).contiguous();
    double acc = 0;
    const float* po = o.data<float>();
    const float* pr = R.data<float>();
    for (int64_t i = 0; i < o.numel(); ++i) acc += double(po[i]) * double(pr[i]);
    return acc;
  };
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    REQUIRE_MESSAGE(x.grad().defined(), "input " << k << " got no gradient");
    REQUIRE(x.is_contiguous());
    const Tensor g = x.grad().contiguous();
    float* px = x.data<float>();
    std::vector<double> ref(size_t(x.numel()));
    double scale = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const float x0 = px[i];
      const double e = opt.eps_rel * std::max(1.0, std::fabs(double(x0)));
      px[i] = float(x0 + e);
      const double lp = probe();
      px[i] = float(x0 - e);
      const double lm = probe();
      px[i] = x0;
      // use the step actually taken in f32
      ref[size_t(i)] = (lp - lm) / (double(float(x0 + e)) - double(float(x0 - e)));
      scale = std::max(scale, std::fabs(ref[size_t(i)]));
    }
    const float* pg = g.data<float>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double err = std::fabs(double(pg[i]) - ref[size_t(i)]);
      if (err > opt.atol + opt.rtol * scale) {
        FAIL_CHECK("gradient mismatch: input " << k << " shape " << shape_str(x.shape()) << " element " << i
                                               << ": autograd " << pg[i] << " vs finite difference " << ref[size_t(i)]
                                               << " (scale " << scale << ")");
        return;
      }
    }
  }
}

}  // namespace mpq::testing
