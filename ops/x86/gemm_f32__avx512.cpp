// AVX-512 fp32 GEMM: 14x32 register tile (14 rows x 2 zmm of C = 28 accumulators + 2 B vectors = 30
// of the 32 zmm registers; the A value is a broadcast memory operand of the FMA). Per k step: 2 aligned
// B loads, 14 broadcasts, 28 FMAs, so the FMA pipes, not the load ports, are the limit.
//
// Blocking (Zen 4: 32 KiB L1d, 1 MiB L2 per core):
//   KC = 256: one B micro-panel [256][32] f32 = 32 KiB, re-read by every A tile of the group. Measured
//             against 192 and 384 on M=128,N=3072,K=768 (see bench/bench_fp32.cpp).
//   MC_TILES = 12 (168 rows): packed A block 168 x 256 x 4 B = 168 KiB, stays in L2 next to the B block.
//   NC = 1536: B block 256 x 1536 x 4 B = 1.5 MiB... streamed once per A group; 2 threads split N.
#include <immintrin.h>

#include "ops/x86/gemm_f32_driver.h"

namespace mpq::kernels {
namespace {

struct Avx512Kernel {
  static constexpr int MR = 14, NR = 32;
  static constexpr int64_t KC = 384, NC = 256;
  static constexpr int MC_TILES = 12;

  // C[R x ncols] (+)= Ap[kc][MR](rows < R) * Bp[kc][32]. Fully unrolled over R so the accumulator
  // arrays live in registers.
  template <int R>
  static void tile(int64_t kc, const float* __restrict Ap, const float* __restrict Bp, float* C, int64_t ldc,
                   int ncols, bool accumulate) {
    __m512 c0[R], c1[R];  // row i: columns 0-15 and 16-31
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
      const __m512 b0 = _mm512_load_ps(Bp + k * NR);
      const __m512 b1 = _mm512_load_ps(Bp + k * NR + 16);
      const float* a = Ap + k * MR;
#pragma GCC unroll 14
      for (int i = 0; i < R; ++i) {
        const __m512 ai = _mm512_set1_ps(a[i]);
        c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
        c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
      }
    }
    const __mmask16 m0 = ncols >= 16 ? __mmask16(0xffff) : __mmask16((1u << ncols) - 1u);
    const __mmask16 m1 = ncols >= 32 ? __mmask16(0xffff)
                         : ncols > 16 ? __mmask16((1u << (ncols - 16)) - 1u)
                                      : __mmask16(0);
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      float* c = C + i * ldc;
      if (accumulate) {
        c0[i] = _mm512_add_ps(c0[i], _mm512_maskz_loadu_ps(m0, c));
        c1[i] = _mm512_add_ps(c1[i], _mm512_maskz_loadu_ps(m1, c + 16));
      }
      _mm512_mask_storeu_ps(c, m0, c0[i]);
      _mm512_mask_storeu_ps(c + 16, m1, c1[i]);
    }
  }
};

}  // namespace

void gemm_f32_14x32__avx512(const GemmArgs& g) { GemmDriver<Avx512Kernel>::run(g); }

}  // namespace mpq::kernels
