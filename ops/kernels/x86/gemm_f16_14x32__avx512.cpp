// FP16-weight GEMM with AVX-512: weights stay binary16 in memory (half the bytes of f32) and are
// widened in registers (vcvtph2ps, exact); arithmetic is f32 FMA, so the peak is the f32 peak.
// Tile 14x32: per k, 2 vcvtph2ps loads of 16 halves, 14 broadcasts of f32 activations, 28 FMAs.
// A may be f16 (widened exactly while packing) or f32 (used as is). Output f32 or f16 (RNE).
#include <immintrin.h>

#include "ops/kernels/x86/gemm_lowp_driver.h"

namespace mpq::kernels {
namespace {

struct F16Kernel {
  using Args = F16GemmArgs;
  using AElem = float;
  static constexpr int MR = 14;
  static int64_t ksteps(const Args& g) { return g.w->K; }
  static int64_t N(const Args& g) { return g.w->N; }
  static int64_t panel_bytes(const Args& g) { return g.w->K * 64; }
  static double ops(const Args& g) { return 2.0 * double(g.M) * double(g.w->N) * double(g.w->K); }
  // Ap [K][MR] f32.
  static void pack_a(const Args& g, int64_t r0, int rows, float* Ap) {
    const int64_t K = g.w->K;
    for (int i = 0; i < rows; ++i) {
      if (g.a_f32) {
        const float* src = static_cast<const float*>(g.A) + (r0 + i) * g.lda;
        for (int64_t k = 0; k < K; ++k) Ap[k * MR + i] = src[k];
      } else {
        const uint16_t* src = static_cast<const uint16_t*>(g.A) + (r0 + i) * g.lda;
        int64_t k = 0;
        for (; k + 16 <= K; k += 16) {
          alignas(64) float tmp[16];
          _mm512_store_ps(tmp, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + k))));
          for (int j = 0; j < 16; ++j) Ap[(k + j) * MR + i] = tmp[j];
        }
        for (; k < K; ++k) Ap[k * MR + i] = _cvtsh_ss(src[k]);
      }
    }
  }

  template <int R>
  static void tile(const Args& g, const float* __restrict Ap, int64_t r0, int64_t panel, int ncols) {
    const PackedF16W& w = *g.w;
    const int64_t K = w.K;
    const uint16_t* __restrict bp = reinterpret_cast<const uint16_t*>(w.w.data()) + panel * K * 32;  // [K][32]
    __m512 c0[R], c1[R];
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; ++k) {
      const __m512 b0 = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(bp + k * 32)));
      const __m512 b1 = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(bp + k * 32 + 16)));
      const float* a = Ap + k * MR;
#pragma GCC unroll 14
      for (int i = 0; i < R; ++i) {
        const __m512 ai = _mm512_set1_ps(a[i]);
        c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
        c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
      }
    }
    const int64_t n0 = panel * 32;
    // Accumulators leave the registers through a plain unrolled store (keeps the k loop spill-free).
    alignas(64) float acc[R][32];  // [R][32] f32
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      _mm512_store_ps(acc[i], c0[i]);
      _mm512_store_ps(acc[i] + 16, c1[i]);
    }
    const Epi e(g.ep, 1.0f);
    const __mmask16 m0 = lane_mask(ncols), m1 = lane_mask(ncols - 16);
    const __m512 bias0 = e.bias16(n0, m0), bias1 = e.bias16(n0 + 16, m1);
    for (int i = 0; i < R; ++i) {
      e.store16(_mm512_load_ps(acc[i]), bias0, r0 + i, n0, m0, g.C, g.ldc);
      e.store16(_mm512_load_ps(acc[i] + 16), bias1, r0 + i, n0 + 16, m1, g.C, g.ldc);
    }
  }
};

}  // namespace

void gemm_f16_14x32__avx512(const F16GemmArgs& g) {
  check_f16_args(g);
  LowpDriver<F16Kernel>::run(g);
}

}  // namespace mpq::kernels
