// W8A8 GEMM with AVX-512 VNNI: 14x32 register tile, K grouped by 4 (one vpdpbusd dword).
//
// Per k-step (4 values of K): 2 aligned loads of the packed weights (int8 [32 cols][4 k] = 128 B),
// 14 dword broadcasts of packed activations (u8 [4 k] per row), 28 vpdpbusd (u8 x s8 -> int32, exact:
// no saturation in vpdpbusd). 28 int32 accumulators + 2 weight vectors = 30 zmm registers.
// Zero point: acc - z * colsum[n] (colsum from pack time), then the documented f32 epilogue
// (ops/kernels/lowp.h): y = fma(float(acc - zc), sa * sw[n], bias) ...
// s8 activations use the same kernel: pack_a flips the sign bit (a + 128) and z = za + 128.
#include <immintrin.h>

#include <cstring>

#include "ops/kernels/x86/gemm_lowp_driver.h"

namespace mpq::kernels {
namespace {

// Direct = false: activations come from the packed panel Ap [ksteps][MR] (s8 flip, K tail handled by
// pack_a_u8x4). Direct = true (u8 A, K % 4 == 0): dwords are broadcast straight from the rows of A,
// no packing pass (it cost ~15% on the small-K 1x1 convs).
template <bool Direct>
struct Q8Kernel {
  using Args = Q8GemmArgs;
  using AElem = int32_t;
  static constexpr int MR = 14;
  static int64_t ksteps(const Args& g) { return g.w->Kp / 4; }
  static int64_t N(const Args& g) { return g.w->N; }
  static int64_t panel_bytes(const Args& g) { return g.w->Kp * 32; }
  static double ops(const Args& g) { return 2.0 * double(g.M) * double(g.w->N) * double(g.w->K); }
  static void pack_a(const Args& g, int64_t r0, int rows, int32_t* Ap) {
    if constexpr (!Direct) pack_a_u8x4<MR>(g, r0, rows, ksteps(g), g.w->K, Ap);
  }

  // C rows [r0, r0+R), columns [32*panel, 32*panel + ncols). Ap: [ksteps][MR] dwords of 4 u8.
  template <int R>
  static void tile(const Args& g, const int32_t* __restrict Ap, int64_t r0, int64_t panel, int ncols) {
    const PackedQ8W& w = *g.w;
    const int64_t ks = w.Kp / 4;
    const int8_t* __restrict bp = reinterpret_cast<const int8_t*>(w.w.data()) + panel * ks * 128;  // [ks][32][4]
    // Accumulators start at -z*colsum[n] (exact int32), so they end at acc - zc with no extra op.
    const int64_t n0 = panel * 32;
    const __m512i z = _mm512_set1_epi32(g.a_signed ? g.za + 128 : g.za);
    const __m512i zero = _mm512_setzero_si512();
    const __m512i nzc0 = _mm512_sub_epi32(zero, _mm512_mullo_epi32(z, _mm512_loadu_si512(w.colsum.data() + n0)));
    const __m512i nzc1 = _mm512_sub_epi32(zero, _mm512_mullo_epi32(z, _mm512_loadu_si512(w.colsum.data() + n0 + 16)));
    const uint8_t* arow = g.A + r0 * g.lda;  // Direct: A rows [R][lda]
    const int64_t lda = g.lda;
    __m512i c0[R], c1[R];  // row i: columns 0-15 and 16-31 of the panel
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) c0[i] = nzc0, c1[i] = nzc1;
    for (int64_t s = 0; s < ks; ++s) {
      // Weights stream once per tile row-block: prefetch 1 KiB ahead (GEMV-like shapes are DRAM-bound
      // and the hardware prefetcher alone reached ~11 GB/s; past the panel end it is a harmless hint).
      _mm_prefetch(reinterpret_cast<const char*>(bp + (s + 8) * 128), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(bp + (s + 8) * 128 + 64), _MM_HINT_T0);
      const __m512i b0 = _mm512_load_si512(bp + s * 128);
      const __m512i b1 = _mm512_load_si512(bp + s * 128 + 64);
      const int32_t* a = Ap + s * MR;
#pragma GCC unroll 14
      for (int i = 0; i < R; ++i) {
        int32_t ad;
        if constexpr (Direct)
          std::memcpy(&ad, arow + i * lda + 4 * s, 4);
        else
          ad = a[i];
        const __m512i ai = _mm512_set1_epi32(ad);
        c0[i] = _mm512_dpbusd_epi32(c0[i], ai, b0);
        c1[i] = _mm512_dpbusd_epi32(c1[i], ai, b1);
      }
    }
    // Accumulators leave the registers through a plain unrolled store, so the (not unrolled) epilogue
    // loop below cannot force GCC to keep the arrays in memory during the k loop.
    alignas(64) int32_t acc[R][32];  // [R][32] int32
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      _mm512_store_si512(acc[i], c0[i]);
      _mm512_store_si512(acc[i] + 16, c1[i]);
    }
    const Epi e(g.ep, g.sa);
    // Per-column scale sa * sw[n] (one f32 multiply, as the reference).
    const __m512 sc0 = _mm512_mul_ps(e.sa, _mm512_loadu_ps(w.scale.data() + n0));
    const __m512 sc1 = _mm512_mul_ps(e.sa, _mm512_loadu_ps(w.scale.data() + n0 + 16));
    const __mmask16 m0 = lane_mask(ncols), m1 = lane_mask(ncols - 16);
    const __m512 bias0 = e.bias16(n0, m0), bias1 = e.bias16(n0 + 16, m1);
    for (int i = 0; i < R; ++i) {
      const __m512i a0 = _mm512_load_si512(acc[i]), a1 = _mm512_load_si512(acc[i] + 16);
      e.store16s(_mm512_cvtepi32_ps(a0), sc0, bias0, r0 + i, n0, m0, g.C, g.ldc);
      e.store16s(_mm512_cvtepi32_ps(a1), sc1, bias1, r0 + i, n0 + 16, m1, g.C, g.ldc);
    }
  }
};

}  // namespace

void gemm_qu8_qc8w_14x32c4__avx512vnni(const Q8GemmArgs& g) {
  check_q8_args(g);
  if (!g.a_signed && g.w->K % 4 == 0)
    LowpDriver<Q8Kernel<true>>::run(g);
  else
    LowpDriver<Q8Kernel<false>>::run(g);
}

}  // namespace mpq::kernels
