// AVX-512 transformer row kernels (ops/kernels/transformer.h): 16 lanes per step, masked tails, the
// documented op order. exp and erf are evaluated with polynomials in registers:
//   exp(x): x clamped to [-104, 88.7] (below -104 the result underflows to 0 anyway, which scalef
//           reproduces: exp(-10000) of a masked key is exactly 0 as in std::exp); n = round(x log2 e),
//           r = x - n ln2 (ln2 split hi/lo, exact first product), Taylor degree 7 on |r| <= ln2/2
//           (truncation 5e-9 relative), 2^n by vscalefps. Measured within 2 ulp of std::exp.
//   erf(x): the rational approximation used by XLA / Eigen (odd degree-13 numerator, even degree-8
//           denominator) on x clamped to [-3.8, 3.8] (erf(3.8) is within one f32 ulp of 1; XLA clamps at 4,
//           where this approximation is off by 3.3e-7). Measured max |error| 3.1e-7 against the double erf
//           (about 5 ulp of 1); gelu built on it is within 7.7e-7 (|gelu| + 1) (swept in
//           tests/test_kernels_transformer.cpp).
// GCC 12 reports the intentionally undefined `__Y` operand inside its own AVX-512 intrinsic headers as
// "maybe uninitialized" (as ops/kernels/x86/gemm_lowp_driver.h notes): false positives, silenced for this TU.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cmath>
#include <vector>

#include "ops/kernels/transformer.h"
#include "ops/kernels/x86/transcendental_f32.h"

namespace mpq::kernels {
namespace {

inline __mmask16 tail_mask(int64_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1u); }

inline __m512 exp512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(poly::kExpMin)), _mm512_set1_ps(poly::kExpMax));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(poly::kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(poly::kLn2Hi), x);  // exact
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(poly::kLn2Lo), r);
  __m512 p = _mm512_set1_ps(poly::kExpTaylor[0]);
  for (int i = 1; i < 8; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(poly::kExpTaylor[i]));
  return _mm512_scalef_ps(p, n);
}

inline __m512 erf512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-poly::kErfClamp)), _mm512_set1_ps(poly::kErfClamp));
  const __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(poly::kErfP[0]);
  for (int i = 1; i < 7; ++i) p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(poly::kErfP[i]));
  p = _mm512_mul_ps(x, p);
  __m512 q = _mm512_set1_ps(poly::kErfQ[0]);
  for (int i = 1; i < 5; ++i) q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(poly::kErfQ[i]));
  // p / q by a reciprocal estimate (14 bits) and one Newton step (~2^-28 relative) instead of vdivps:
  // within 2 ulp of the division, far below the approximation's own error.
  __m512 r = _mm512_rcp14_ps(q);
  r = _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, _mm512_set1_ps(2.0f)));
  return _mm512_mul_ps(p, r);
}

// Stores y[0..15] (lanes in m) at (r, c) in o's format, with the scalar store's rounding.
inline void store16(const ActOut& o, int64_t r, int64_t c, __m512 y, __mmask16 m) {
  switch (o.dt) {
    case DType::f32:
      _mm512_mask_storeu_ps(static_cast<float*>(o.p) + r * o.ld + c, m, y);
      break;
    case DType::f16:
      _mm256_mask_storeu_epi16(static_cast<uint16_t*>(o.p) + r * o.ld + c, m,
                               _mm512_cvtps_ph(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      break;
    case DType::bf16: {  // f32_to_bf16: (u + 0x7fff + lsb) >> 16; NaN -> (u >> 16) | 0x40
      const __m512i u = _mm512_castps_si512(y);
      const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
      __m512i b = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
      const __mmask16 nan = _mm512_cmp_ps_mask(y, y, _CMP_UNORD_Q);
      b = _mm512_mask_or_epi32(b, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
      _mm256_mask_storeu_epi16(static_cast<uint16_t*>(o.p) + r * o.ld + c, m, _mm512_cvtepi32_epi16(b));
      break;
    }
    case DType::u8: {  // clamp(nearbyint(y / scale) + zp, 0, 255)
      __m512 t = _mm512_roundscale_ps(_mm512_div_ps(y, _mm512_set1_ps(o.scale)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      t = _mm512_add_ps(t, _mm512_set1_ps(float(o.zp)));
      t = _mm512_min_ps(_mm512_max_ps(t, _mm512_setzero_ps()), _mm512_set1_ps(255.0f));
      _mm512_mask_cvtepi32_storeu_epi8(static_cast<uint8_t*>(o.p) + r * o.ld + c, m, _mm512_cvtps_epi32(t));
      break;
    }
    default:  // not an activation format: refused by the argument checks before any store
      break;
  }
}

// int input: float(int32(x) + corr) (exact int32 add), else x.
inline __m512 load_in(const float* x, const int32_t* row_corr, int64_t r, __mmask16 m) {
  const __m512 v = _mm512_maskz_loadu_ps(m, x);
  if (!row_corr) return v;
  return _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_cvtps_epi32(v), _mm512_set1_epi32(row_corr[r])));
}

// Sum of the 16 lanes in double (two 8-lane halves widened exactly).
inline __m512d widen_add(__m512d acc, __m512 v) {
  acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
  return _mm512_add_pd(acc, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}

std::vector<float>& row_buffer(int64_t n) {  // per-thread [n] f32, grow-only
  thread_local std::vector<float> buf;
  if (int64_t(buf.size()) < n + 16) buf.resize(size_t(n + 16));
  return buf;
}

}  // namespace

void layer_norm_rows__avx512(const LayerNormArgs& a, int64_t r0, int64_t r1) {
  const int64_t D = a.cols;
  float* v = row_buffer(D).data();  // [D] one row's input
  for (int64_t r = r0; r < r1; ++r) {
    __m512d s = _mm512_setzero_pd();
    for (int64_t c = 0; c < D; c += 16) {
      const __mmask16 m = tail_mask(D - c);
      __m512 t = _mm512_maskz_loadu_ps(m, a.x + r * a.ldx + c);
      if (a.bias) t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(m, a.bias + c));
      if (a.res) t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(m, a.res + r * a.ldr + c));
      _mm512_storeu_ps(v + c, t);
      s = widen_add(s, t);  // masked lanes are 0
    }
    const float mean = float(_mm512_reduce_add_pd(s) / double(D));
    const __m512 mv = _mm512_set1_ps(mean);
    __m512d q = _mm512_setzero_pd();
    for (int64_t c = 0; c < D; c += 16) {
      const __mmask16 m = tail_mask(D - c);
      const __m512 d = _mm512_maskz_sub_ps(m, _mm512_loadu_ps(v + c), mv);
      const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(d));
      const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(d), 1)));
      q = _mm512_add_pd(q, _mm512_mul_pd(lo, lo));
      q = _mm512_add_pd(q, _mm512_mul_pd(hi, hi));
    }
    const float inv = float(1.0 / std::sqrt(_mm512_reduce_add_pd(q) / double(D) + double(a.eps)));
    const __m512 iv = _mm512_set1_ps(inv);
    for (int64_t c = 0; c < D; c += 16) {
      const __mmask16 m = tail_mask(D - c);
      __m512 y = _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(v + c), mv), iv),
                               _mm512_maskz_loadu_ps(m, a.gamma + c));
      y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, a.beta + c));
      store16(a.out, r, c, y, m);
      if (a.out2.p) store16(a.out2, r, c, y, m);
    }
  }
}

void softmax_rows__avx512(const SoftmaxArgs& a, int64_t r0, int64_t r1) {
  const int64_t C = a.cols;
  float* v = row_buffer(C).data();  // [C] one row's logits, then exponentials
  const __m512 sc = _mm512_set1_ps(a.scale);
  for (int64_t r = r0; r < r1; ++r) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 m = tail_mask(C - c);
      __m512 t = load_in(a.x + r * a.ldx + c, a.row_corr, r, m);
      if (a.scale != 1.0f) t = _mm512_mul_ps(t, sc);
      if (a.mask) t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(m, a.mask + c));
      _mm512_storeu_ps(v + c, t);
      mx = _mm512_mask_max_ps(mx, m, mx, t);
    }
    const __m512 mxv = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 m = tail_mask(C - c);
      const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(v + c), mxv));
      _mm512_storeu_ps(v + c, e);
      sum = _mm512_mask_add_ps(sum, m, sum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int64_t c = 0; c < C; c += 16)
      store16(a.out, r, c, _mm512_mul_ps(_mm512_loadu_ps(v + c), inv), tail_mask(C - c));
  }
}

void rows_map__avx512(const RowMapArgs& a, int64_t r0, int64_t r1) {
  const __m512 sc = _mm512_set1_ps(a.scale), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  const __m512 inv_sqrt2 = _mm512_set1_ps(0.70710678118654752f);
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = 0; c < a.cols; c += 16) {
      const __mmask16 m = tail_mask(a.cols - c);
      __m512 v = load_in(a.x + r * a.ldx + c, a.row_corr, r, m);
      if (a.scale != 1.0f) v = _mm512_mul_ps(v, sc);
      if (a.bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, a.bias + c));
      if (a.gelu) v = _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, erf512(_mm512_mul_ps(v, inv_sqrt2))));
      store16(a.out, r, c, v, m);
    }
}

}  // namespace mpq::kernels
