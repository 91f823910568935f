// BF16 GEMM with AVX512_BF16: vdpbf16ps multiplies pairs of bf16 (K grouped by 2) and accumulates in
// f32 (products are exact in f32; the instruction rounds to nearest even with DAZ/FTZ).
// Tile 14x32: per k-pair, 2 aligned loads of packed weights (bf16 [32 cols][2 k] = 128 B), 14 dword
// broadcasts of activation pairs, 28 vdpbf16ps. f32 A is rounded to bf16 (RNE, f32_to_bf16) while
// packing. Output f32 (or u8 via the shared epilogue).
#include <immintrin.h>

#include "core/dtype.h"
#include "ops/x86/gemm_lowp_driver.h"

namespace mpq::kernels {
namespace {

struct BF16Kernel {
  using Args = BF16GemmArgs;
  using AElem = uint32_t;
  static constexpr int MR = 14;
  static int64_t ksteps(const Args& g) { return g.w->Kp / 2; }
  static int64_t N(const Args& g) { return g.w->N; }
  static double ops(const Args& g) { return 2.0 * double(g.M) * double(g.w->N) * double(g.w->K); }
  // Ap [Kp/2][MR]: bf16 pair (k even in the low half), 0 beyond K.
  static void pack_a(const Args& g, int64_t r0, int rows, uint32_t* Ap) {
    const int64_t K = g.w->K, ks = ksteps(g);
    for (int i = 0; i < rows; ++i) {
      auto at = [&](int64_t k) -> uint32_t {
        if (k >= K) return 0;
        return g.a_f32 ? f32_to_bf16(static_cast<const float*>(g.A)[(r0 + i) * g.lda + k])
                       : static_cast<const uint16_t*>(g.A)[(r0 + i) * g.lda + k];
      };
      for (int64_t s = 0; s < ks; ++s) Ap[s * MR + i] = at(2 * s) | (at(2 * s + 1) << 16);
    }
  }

  template <int R>
  static void tile(const Args& g, const uint32_t* __restrict Ap, int64_t r0, int64_t panel, int ncols) {
    const PackedBF16W& w = *g.w;
    const int64_t ks = w.Kp / 2;
    const uint16_t* __restrict bp = reinterpret_cast<const uint16_t*>(w.w.data()) + panel * ks * 64;  // [ks][32][2]
    __m512 c0[R], c1[R];
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int64_t s = 0; s < ks; ++s) {
      const __m512bh b0 = (__m512bh)_mm512_load_si512(bp + s * 64);
      const __m512bh b1 = (__m512bh)_mm512_load_si512(bp + s * 64 + 32);
      const uint32_t* a = Ap + s * MR;
#pragma GCC unroll 14
      for (int i = 0; i < R; ++i) {
        const __m512bh ai = (__m512bh)_mm512_set1_epi32(int(a[i]));
        c0[i] = _mm512_dpbf16_ps(c0[i], ai, b0);
        c1[i] = _mm512_dpbf16_ps(c1[i], ai, b1);
      }
    }
    const int64_t n0 = panel * 32;
    const Epi e(g.ep, 1.0f);
    const __mmask16 m0 = lane_mask(ncols), m1 = lane_mask(ncols - 16);
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      e.store16(c0[i], r0 + i, n0, m0, g.C, g.ldc);
      e.store16(c1[i], r0 + i, n0 + 16, m1, g.C, g.ldc);
    }
  }
};

}  // namespace

void gemm_bf16_14x32c2__avx512bf16(const BF16GemmArgs& g) {
  check_bf16_args(g);
  LowpDriver<BF16Kernel>::run(g);
}

}  // namespace mpq::kernels
