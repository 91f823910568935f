// AVX-512 transformer row kernels (ops/kernels/transformer.h): the xsimd templates of transformer_f32_xsimd.h
// instantiated for xsimd::avx512bw (16 lanes), with the primitives xsimd 8.1 lacks written here. Tails by
// lane masks (masked loads read nothing past cols and give 0, masked stores write nothing past cols).
// p * 2^n by vscalefps; the erf quotient by a reciprocal estimate (14 bits) and one Newton step (~2^-28
// relative) instead of vdivps: within 2 ulp of the division, far below the approximation's own error.
// GCC 12 reports the intentionally undefined `__Y` operand inside its own AVX-512 intrinsic headers as
// "maybe uninitialized" (as ops/kernels/x86/gemm_lowp_driver.h notes): false positives, silenced for this TU.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include "ops/kernels/x86/transformer_f32_xsimd.h"

namespace mpq::kernels {
namespace {

struct Avx512 {
  using arch = xsimd::avx512bw;
  using F = xsimd::batch<float, arch>;
  using D = xsimd::batch<double, arch>;
  using U = xsimd::batch<uint32_t, arch>;

  static __mmask16 mask(int64_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1u); }
  static F load(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void store(float* p, F y, int64_t n) { _mm512_mask_storeu_ps(p, mask(n), y); }
  static void store_f16(uint16_t* p, F y, int64_t n) {
    _mm256_mask_storeu_epi16(p, mask(n), _mm512_cvtps_ph(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  static void store_u16(uint16_t* p, U v, int64_t n) {  // lanes in [0, 0xffff]: truncation is exact
    _mm256_mask_storeu_epi16(p, mask(n), _mm512_cvtepi32_epi16(v));
  }
  static void store_u8(uint8_t* p, U v, int64_t n) { _mm512_mask_cvtepi32_storeu_epi8(p, mask(n), v); }
  static D widen_lo(F y) { return _mm512_cvtps_pd(_mm512_castps512_ps256(y)); }
  static D widen_hi(F y) { return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(y), 1))); }
  static float hmax(F y) { return _mm512_reduce_max_ps(y); }
  // xsimd 8.1's fma for avx512f is a * b + c (two roundings under -ffp-contract=off)
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F scale_pow2(F p, F n) { return _mm512_scalef_ps(p, n); }
  static F quotient(F p, F q) {
    const __m512 r = _mm512_rcp14_ps(q);
    return _mm512_mul_ps(p, _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, _mm512_set1_ps(2.0f))));
  }
};

}  // namespace

void layer_norm_rows__avx512(const LayerNormArgs& a, int64_t r0, int64_t r1) {
  xrows::layer_norm_rows<Avx512>(a, r0, r1);
}
void softmax_rows__avx512(const SoftmaxArgs& a, int64_t r0, int64_t r1) { xrows::softmax_rows<Avx512>(a, r0, r1); }
void rows_map__avx512(const RowMapArgs& a, int64_t r0, int64_t r1) { xrows::rows_map<Avx512>(a, r0, r1); }

}  // namespace mpq::kernels
