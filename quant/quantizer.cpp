#include "quant/quantizer.h"

#include <algorithm>
#include <cfenv>
#include <cmath>

#include "core/error.h"
#include "ops/kernels/quantize_weights.h"

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
  std::vector<int8_t> q(size_t(O * K));            // [O, K]
  std::vector<float> scales(size_t(O * (K / G)));  // [O][K / G]
  kernels::quantize_rows({c.data<float>(), O, K, spec.group, spec.bits, q.data(), scales.data()});
  Tensor out = Tensor::empty(w.shape());  // [O, ...]: q * s, the one f32 product the kernels compute
  float* dst = out.data<float>();
  for (int64_t i = 0; i < O * K; ++i) dst[i] = float(q[size_t(i)]) * scales[size_t((i / K) * (K / G) + (i % K) / G)];
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
