// BF16 GEMM with AVX512_BF16: vdpbf16ps multiplies pairs of bf16 (K grouped by 2) and accumulates in
// f32 (products are exact in f32; the instruction rounds to nearest even with DAZ/FTZ).
// Tile 14x32: per k-pair, 2 aligned loads of packed weights (bf16 [32 cols][2 k] = 128 B), 14 dword
// broadcasts of activation pairs, 28 vdpbf16ps. f32 A is rounded to bf16 (RNE, f32_to_bf16) while
// packing. Output f32 (or u8 via the shared epilogue).
#include <immintrin.h>

#include "core/dtype.h"
#include "ops/kernels/x86/gemm_lowp_driver.h"

namespace mpq::kernels {
namespace {

struct BF16Kernel {
  using Args = BF16GemmArgs;
  using AElem = uint32_t;
  static constexpr int MR = 14;
  static int64_t ksteps(const Args& g) { return g.w->Kp / 2; }
  static int64_t N(const Args& g) { return g.w->N; }
  static int64_t panel_bytes(const Args& g) { return g.w->Kp * 64; }
  static double ops(const Args& g) { return 2.0 * double(g.M) * double(g.w->N) * double(g.w->K); }
  // Ap [Kp/2][MR]: bf16 pair (k even in the low half), 0 beyond K. f32 rows are first rounded to a bf16
  // row (RNE in integer arithmetic, bit-identical to f32_to_bf16 incl. denormals and NaN).
  static void pack_a(const Args& g, int64_t r0, int rows, uint32_t* Ap) {
    const int64_t K = g.w->K;
    for (int i = 0; i < rows; ++i) {
      if (!g.a_f32) {
        put_pairs(static_cast<const uint16_t*>(g.A) + (r0 + i) * g.lda, 0, K, K, i, Ap);
        continue;
      }
      const float* f = static_cast<const float*>(g.A) + (r0 + i) * g.lda;
      alignas(64) uint16_t row[kRowChunk];  // bf16 [kRowChunk]: columns [c0, c0 + n) of this row
      for (int64_t c0 = 0; c0 < K; c0 += kRowChunk) {
        const int64_t n = K - c0 < kRowChunk ? K - c0 : kRowChunk;
        int64_t k = 0;
        for (; k + 16 <= n; k += 16) {
          const __m512i u = _mm512_loadu_si512(f + c0 + k);
          const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
          __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
          const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                        _mm512_set1_epi32(0x7f800000));
          r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x0040));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(row + k), _mm512_cvtepi32_epi16(r));
        }
        for (; k < n; ++k) row[k] = f32_to_bf16(f[c0 + k]);
        put_pairs(row, c0, n, K, i, Ap);
      }
    }
  }
  // f32 rows are rounded in chunks of this many columns on the stack (even, so that a k pair never straddles
  // two chunks); a thread_local std::vector here would emit a std template instantiation compiled for AVX-512.
  static constexpr int64_t kRowChunk = 512;
  // Writes bf16 columns [c0, c0 + n) of row i (src[0] is column c0; c0 even) into Ap's k pairs.
  static void put_pairs(const uint16_t* src, int64_t c0, int64_t n, int64_t K, int i, uint32_t* Ap) {
    const int64_t s0 = c0 / 2, s1 = (c0 + n) / 2;
    for (int64_t s = s0; s < s1; ++s) std::memcpy(&Ap[s * MR + i], src + 2 * (s - s0), 4);
    if (c0 + n == K && K % 2) Ap[(K / 2) * MR + i] = src[n - 1];
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

void gemm_bf16_14x32c2__avx512bf16(const BF16GemmArgs& g) {
  check_bf16_args(g);
  LowpDriver<BF16Kernel>::run(g);
}

}  // namespace mpq::kernels
