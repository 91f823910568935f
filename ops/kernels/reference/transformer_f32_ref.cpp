// Reference transformer row kernels: plain loops with std::exp / std::erf and the op order documented in
// ops/kernels/transformer.h. The oracles of tests/test_kernels_transformer.cpp and the fallback.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/kernels/transformer.h"

namespace mpq::kernels {
namespace {
constexpr float kInvSqrt2 = 0.70710678118654752f;  // as ops/activation.cpp's gelu

float int_input(const float* x, const int32_t* row_corr, int64_t r, int64_t c, int64_t ldx) {
  const float v = x[r * ldx + c];
  return row_corr ? float(int32_t(v) + row_corr[r]) : v;
}
}  // namespace

void layer_norm_rows_ref(const LayerNormArgs& a, int64_t r0, int64_t r1) {
  const int64_t D = a.cols;
  std::vector<float> v(static_cast<size_t>(D));  // [D] one row's input
  for (int64_t r = r0; r < r1; ++r) {
    double s = 0;
    for (int64_t c = 0; c < D; ++c) {
      float t = a.x[r * a.ldx + c];
      if (a.bias) t = t + a.bias[c];
      if (a.res) t = t + a.res[r * a.ldr + c];
      v[size_t(c)] = t;
      s += t;
    }
    const float m = float(s / double(D));
    double var = 0;
    for (int64_t c = 0; c < D; ++c) var += double(v[size_t(c)] - m) * double(v[size_t(c)] - m);
    const float inv = float(1.0 / std::sqrt(var / double(D) + double(a.eps)));
    for (int64_t c = 0; c < D; ++c) {
      const float y = (v[size_t(c)] - m) * inv * a.gamma[c] + a.beta[c];
      act_store_scalar(a.out, r, c, y);
      if (a.out2.p) act_store_scalar(a.out2, r, c, y);
    }
  }
}

void softmax_rows_ref(const SoftmaxArgs& a, int64_t r0, int64_t r1) {
  std::vector<float> v(static_cast<size_t>(a.cols));  // [cols] one row's logits
  for (int64_t r = r0; r < r1; ++r) {
    float mx = -INFINITY;
    for (int64_t c = 0; c < a.cols; ++c) {
      float t = int_input(a.x, a.row_corr, r, c, a.ldx);
      if (a.scale != 1.0f) t = t * a.scale;
      if (a.mask) t = t + a.mask[c];
      v[size_t(c)] = t;
      mx = std::max(mx, t);
    }
    float sum = 0;
    for (int64_t c = 0; c < a.cols; ++c) {
      v[size_t(c)] = std::exp(v[size_t(c)] - mx);
      sum += v[size_t(c)];
    }
    const float inv = 1.0f / sum;
    for (int64_t c = 0; c < a.cols; ++c) act_store_scalar(a.out, r, c, v[size_t(c)] * inv);
  }
}

void rows_map_ref(const RowMapArgs& a, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = 0; c < a.cols; ++c) {
      float v = int_input(a.x, a.row_corr, r, c, a.ldx);
      if (a.scale != 1.0f) v = v * a.scale;
      if (a.bias) v = v + a.bias[c];
      if (a.gelu) v = 0.5f * v * (1.0f + std::erf(v * kInvSqrt2));
      act_store_scalar(a.out, r, c, v);
    }
}

}  // namespace mpq::kernels
