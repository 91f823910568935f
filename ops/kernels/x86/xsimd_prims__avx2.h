// The AVX2 (+ FMA, F16C) primitives of the xsimd kernels (xsimd_prims.h): xsimd::fma3<xsimd::avx2>, 8 lanes
// (fma3 so that xsimd::fma is vfmadd). Tails: f32 loads and stores by vmaskmovps (masked-off lanes are not
// read and read as 0); narrower loads and stores of a partial step go through a 16-byte stack buffer and copy
// only the valid elements, so nothing past n is read or written.
// Include only from translation units compiled for AVX2 (ops/kernels/x86/*__avx2.cpp); the struct sits in an
// anonymous namespace, so every template instantiated with it stays local to that unit.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "ops/kernels/x86/xsimd_prims.h"

namespace mpq::kernels {
namespace {

struct Avx2 {
  using arch = xsimd::fma3<xsimd::avx2>;
  using F = xsimd::batch<float, arch>;
  using D = xsimd::batch<double, arch>;
  using U = xsimd::batch<uint32_t, arch>;

  // vmaskmovps lane mask of min(n, 8) lanes (n < 8 here)
  static __m256i mask(int64_t n) {
    alignas(32) static const int32_t kOnes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kOnes + 8 - n));
  }
  static F load(const float* p, int64_t n) { return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mask(n)); }
  static void store(float* p, F y, int64_t n) {
    if (n >= 8)
      _mm256_storeu_ps(p, y);
    else
      _mm256_maskstore_ps(p, mask(n), y);
  }
  // v's first min(n, 8) elements of `bytes` bytes each (v holds 8 of them in its low 8 * bytes bytes)
  static void store_low(void* p, __m128i v, int64_t n, size_t bytes) {
    if (n >= 8 && bytes == 2) {
      _mm_storeu_si128(static_cast<__m128i*>(p), v);
    } else if (n >= 8) {
      _mm_storel_epi64(static_cast<__m128i*>(p), v);
    } else {
      alignas(16) uint8_t buf[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(buf), v);
      std::memcpy(p, buf, size_t(n) * bytes);
    }
  }
  static void store_f16(uint16_t* p, F y, int64_t n) {
    store_low(p, _mm256_cvtps_ph(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), n, 2);
  }
  static void store_u16(uint16_t* p, U v, int64_t n) {  // lanes in [0, 0xffff]: the signed pack is exact
    store_low(p, _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)), n, 2);
  }
  static void store_u8(uint8_t* p, U v, int64_t n) {  // lanes in [0, 255]
    const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    store_low(p, _mm_packus_epi16(w, w), n, 1);
  }
  // v's low 16 bytes (n >= 8 elements of `bytes` bytes, or fewer through a stack buffer: nothing past n read)
  static __m128i load_low(const void* p, int64_t n, size_t bytes) {
    if (n >= 8 && bytes == 2) return _mm_loadu_si128(static_cast<const __m128i*>(p));
    if (n >= 8) return _mm_loadl_epi64(static_cast<const __m128i*>(p));
    alignas(16) uint8_t buf[16] = {};
    std::memcpy(buf, p, size_t(n) * bytes);
    return _mm_load_si128(reinterpret_cast<const __m128i*>(buf));
  }
  // t[idx] per lane by eight scalar loads: vpgatherdd ymm is slower than that on Zen 4 / 5 (requantize of
  // 1.2 M bytes: 470 vs 315 us)
  static U gather(const int32_t* t, U idx) {
    alignas(32) uint32_t i[8], o[8];  // [8] lane indices, [8] table entries
    idx.store_aligned(i);
    for (int k = 0; k < 8; ++k) o[k] = uint32_t(t[i[k]]);
    return U::load_aligned(o);
  }
  // zero-extended lanes [0, min(n, 8)); the others 0
  static U load_u8(const uint8_t* p, int64_t n) { return _mm256_cvtepu8_epi32(load_low(p, n, 1)); }
  static U load_u16(const uint16_t* p, int64_t n) { return _mm256_cvtepu16_epi32(load_low(p, n, 2)); }
  // vcvtph2ps of halves [0, min(n, 8)): exact, except that signalling NaNs come back quiet
  static F load_f16(const uint16_t* p, int64_t n) { return _mm256_cvtph_ps(load_low(p, n, 2)); }
  static D widen_lo(F y) { return _mm256_cvtps_pd(_mm256_castps256_ps128(y)); }
  static D widen_hi(F y) { return _mm256_cvtps_pd(_mm256_extractf128_ps(y, 1)); }
  static float hmax(F y) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(y), _mm256_extractf128_ps(y, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
  }
  static F fma(F a, F b, F c) { return xsimd::fma(a, b, c); }
  // AVX2 has no vscalefps
  static F scale_pow2(F p, F n) { return xrows::scale_pow2_split<Avx2>(p, n); }
  static F quotient(F p, F q) { return p / q; }
};

}  // namespace
}  // namespace mpq::kernels
