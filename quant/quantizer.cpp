#include "quant/quantizer.h"

#include <algorithm>
#include <cfenv>
#include <cmath>

#include "core/error.h"

namespace mpq::quant {

Tensor fake_quant_weight(const Tensor& w, const WeightQuantSpec& spec) {
  if (!(w.dtype() == DType::f32 && w.dim() >= 2))
    fail("fake_quant_weight: f32 weight of rank >= 2 expected, got {} {}", dtype_name(w.dtype()), shape_str(w.shape()));
  check(spec.bits >= 2 && spec.bits <= 8, "fake_quant_weight: {} bits not supported (2..8)", spec.bits);
  const Tensor c = w.contiguous();
  const int64_t O = w.size(0), K = w.numel() / O;
  const int64_t G = spec.group > 0 ? spec.group : K;
  if (!(K % G == 0))
    fail("fake_quant_weight: group size {} does not divide the {} inputs of weight {}", G, K, shape_str(w.shape()));
  const float qmax = float((1 << (spec.bits - 1)) - 1);
  Tensor out = Tensor::zeros(w.shape());  // [O, ...]
  const float* src = c.data<float>();
  float* dst = out.data<float>();
#pragma omp parallel for if (O * K > (1 << 16)) schedule(static)
  for (int64_t o = 0; o < O; ++o)
    for (int64_t g0 = 0; g0 < K; g0 += G) {
      const float* s = src + o * K + g0;
      float* d = dst + o * K + g0;
      float amax = 0;
      for (int64_t i = 0; i < G; ++i) amax = std::max(amax, std::fabs(s[i]));
      const float scale = amax > 0 ? amax / qmax : 1.0f;
      for (int64_t i = 0; i < G; ++i) d[i] = std::clamp(std::nearbyint(s[i] / scale), -qmax, qmax) * scale;
    }
  return out;
}

Tensor fake_quant_f16(const Tensor& w) { return w.to(DType::f16).to(DType::f32); }

double quant_error_sq(const Tensor& w, const Tensor& q) {
  if (!(w.shape() == q.shape()))
    fail("quant_error_sq: shapes {} and {} differ", shape_str(w.shape()), shape_str(q.shape()));
  const Tensor a = w.contiguous(), b = q.contiguous();
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  double acc = 0;
  for (int64_t i = 0; i < a.numel(); ++i) acc += (double(pa[i]) - pb[i]) * (double(pa[i]) - pb[i]);
  return acc;
}

}  // namespace mpq::quant
