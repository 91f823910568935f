// The AVX-512 primitives of the xsimd kernels (xsimd_prims.h): xsimd::avx512bw, 16 lanes. Tails by lane masks:
// masked loads read nothing past n and give 0, masked stores write nothing past n. p * 2^n by vscalefps; the
// erf quotient by a reciprocal estimate (14 bits) and one Newton step (~2^-28 relative) instead of vdivps:
// within 2 ulp of the division, far below the approximation's own error.
// Include only from translation units compiled with the AVX-512 flags (ops/kernels/x86/*__avx512.cpp). The
// struct sits in an anonymous namespace, so every template instantiated with it is local to that unit: no
// AVX-512 copy of a shared template can reach another unit through the linker (tests/isa/isa_tests.cmake).
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "ops/kernels/x86/xsimd_prims.h"

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
  // narrowing stores: a full step narrows in registers and stores plainly, as the hand-written kernels did; only
  // a partial step uses the masked narrowing store to memory (vpmovdb / vpmovdw m{k})
  static void store_u16(uint16_t* p, U v, int64_t n) {  // lanes in [0, 0xffff]: truncation is exact
    if (n >= 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(v));
    else
      _mm256_mask_storeu_epi16(p, mask(n), _mm512_cvtepi32_epi16(v));
  }
  static void store_u8(uint8_t* p, U v, int64_t n) {
    if (n >= 16)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(v));
    else
      _mm512_mask_cvtepi32_storeu_epi8(p, mask(n), v);
  }
  // t[idx] per lane by vpgatherdd (xsimd 8.1's integer gather never selects its vpgatherdd overload and falls
  // back to a scalar loop: requantize of 1.2 M bytes took 450 instead of 324 us; sixteen scalar loads through a
  // stack array took 374 us)
  static U gather(const int32_t* t, U idx) { return _mm512_i32gather_epi32(idx, t, 4); }
  // zero-extended lanes [0, min(n, 16)); the others 0, nothing past them read
  static U load_u8(const uint8_t* p, int64_t n) { return _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask(n), p)); }
  static U load_u16(const uint16_t* p, int64_t n) {
    return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask(n), p));
  }
  // vcvtph2ps of halves [0, min(n, 16)): exact, except that signalling NaNs come back quiet
  static F load_f16(const uint16_t* p, int64_t n) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask(n), p)); }
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
}  // namespace mpq::kernels
