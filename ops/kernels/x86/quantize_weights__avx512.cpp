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

}  // namespace mpq::kernels
