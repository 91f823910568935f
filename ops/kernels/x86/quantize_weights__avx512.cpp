// AVX-512 row quantizer, bit-exact with quantize_rows_ref: the same f32 division (vdivps is IEEE), round half
// to even (vrndscaleps imm 0 = nearbyint under the default mode), clamp, then a truncating narrow of values
// already in [-qmax, qmax]. 16 lanes per step, masked tails.
// GCC 12 reports its own _mm512_undefined_* placeholders inside the masked / reduce intrinsics as
// "may be used uninitialized" (a known false positive); the other AVX-512 TUs silence it the same way.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "ops/kernels/quantize_weights.h"

namespace mpq::kernels {

void quantize_rows__avx512(const QuantizeRowsArgs& a) {
  const int64_t G = a.group > 0 ? a.group : a.K;
  if (G == 0) return;
  const float qmax = float((1 << (a.bits - 1)) - 1);
  const int64_t ng = a.K / G;
  const __m512 vmax = _mm512_set1_ps(qmax), vmin = _mm512_set1_ps(-qmax);
#pragma omp parallel for schedule(static) if (a.rows * a.K > (1 << 16))
  for (int64_t r = 0; r < a.rows; ++r)
    for (int64_t g = 0; g < ng; ++g) {
      const float* s = a.w + r * a.K + g * G;
      int8_t* d = a.q + r * a.K + g * G;
      __m512 m = _mm512_setzero_ps();
      for (int64_t i = 0; i < G; i += 16) {
        const __mmask16 k = G - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (G - i)) - 1);
        m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_maskz_loadu_ps(k, s + i)));
      }
      const float amax = _mm512_reduce_max_ps(m);
      const float scale = amax > 0 ? amax / qmax : 1.0f;
      const __m512 vs = _mm512_set1_ps(scale);
      for (int64_t i = 0; i < G; i += 16) {
        const __mmask16 k = G - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (G - i)) - 1);
        __m512 x = _mm512_div_ps(_mm512_maskz_loadu_ps(k, s + i), vs);
        x = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        x = _mm512_min_ps(_mm512_max_ps(x, vmin), vmax);
        _mm_mask_storeu_epi8(d + i, k, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(x)));
      }
      a.scales[r * ng + g] = scale;
    }
}

// 32 packed bytes -> 64 values per step: low nibbles are values 0..31, high nibbles 32..63 (split nibbles),
// sign-extended as (v ^ 8) - 8; a short tail stores under a mask.
void widen_s4_s8_c64__avx512(const WidenS4Args& a) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m512i eight = _mm512_set1_epi8(8);
  for (int64_t i = 0; i < a.n; i += kSplitNibbleChunk) {
    const int64_t left = a.n - i;
    // a short last chunk still has its 32 packed bytes (split_nibble_bytes rounds up)
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.packed + i / 2));
    const __m256i lo = _mm256_and_si256(b, m4), hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
    const __m512i v =
        _mm512_sub_epi8(_mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), eight), eight);
    if (left >= kSplitNibbleChunk)
      _mm512_storeu_si512(a.y + i, v);
    else
      _mm512_mask_storeu_epi8(a.y + i, __mmask64(~0ull >> (kSplitNibbleChunk - left)), v);
  }
}

}  // namespace mpq::kernels
