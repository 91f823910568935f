// AVX2 (+ FMA, F16C) transformer row kernels (ops/kernels/transformer.h) for AVX2-only machines and
// MPQ_ISA=avx2: the xsimd templates of transformer_f32_xsimd.h instantiated for xsimd::fma3<xsimd::avx2>
// (8 lanes; fma3 so that xsimd::fma is vfmadd), with the primitives xsimd 8.1 lacks written here.
// Tails: loads by vmaskmovps (masked-off lanes are not read and read as 0); f32 stores by vmaskmovps; f16 /
// bf16 / u8 stores of a partial step go through a 16-byte stack buffer and copy only the valid elements, so
// nothing past cols is read or written.
// Against the reference twins: rows_map without gelu and layer_norm are bit-exact in the sweeps; softmax f32
// within 2^-19 relative up to 768 columns (the reference's in-order f32 row sum dominates).
#include <immintrin.h>

#include <cstring>

#include "ops/kernels/x86/transformer_f32_xsimd.h"

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

void layer_norm_rows__avx2(const LayerNormArgs& a, int64_t r0, int64_t r1) { xrows::layer_norm_rows<Avx2>(a, r0, r1); }
void softmax_rows__avx2(const SoftmaxArgs& a, int64_t r0, int64_t r1) { xrows::softmax_rows<Avx2>(a, r0, r1); }
void rows_map__avx2(const RowMapArgs& a, int64_t r0, int64_t r1) { xrows::rows_map<Avx2>(a, r0, r1); }

}  // namespace mpq::kernels
