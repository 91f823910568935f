// AVX-512 fp32 GEMM: 14x32 register tile (14 rows x 2 zmm of C = 28 accumulators + 2 B vectors = 30
// of the 32 zmm registers; the A value is a broadcast memory operand of the FMA). Per k step: 2 aligned
// B loads, 14 broadcasts, 28 FMAs, so the FMA pipes, not the load ports, are the limit.
//
// Blocking (Zen 4: 32 KiB L1d, 1 MiB L2 per core), swept on M=128,N=3072,K=768 and 128x256x384:
//   KC = 384: beat 128/192/256 (fewer C read-modify-write passes; the B micro-panel [384][32] = 48 KiB
//             then streams from L2, which the hardware prefetcher keeps up with).
//   NC = 128: packed B chunk [4 panels][384][32] = 192 KiB + the next chunk being prefetched (192 KiB)
//             + packed A (168 x 384 x 4 B = 252 KiB) stay inside the 1 MiB L2; NC = 256 evicted the
//             prefetched chunk (B^T case 78 -> 90 GFLOP/s per core going to 128).
//   MC_TILES = 12 (<= 168 rows per packed A block).
#include <immintrin.h>

#include "ops/kernels/x86/gemm_f32_driver.h"

namespace mpq::kernels {
namespace {

struct Avx512Kernel {
  static constexpr int MR = 14, NR = 32;
  static constexpr int64_t KC = 384, NC = 128;
  static constexpr int MC_TILES = 12;
  static constexpr int TB = 16, AS = 16;  // A panel stride 16 >= MR so A packs with 16x16 transposes

  // 16x16 transpose in registers: unpack (pairs), shuffle (quads within 128-bit lanes), then two
  // rounds of 128-bit lane shuffles. Output column c = 4 * lane + m (see the index comments).
  static void transpose_block(const float* src, int64_t ld, float* dst, int64_t dst_ld) {
    __m512 r[16], t[16];  // r: source rows j (16 k each); t: scratch
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) r[j] = _mm512_loadu_ps(src + j * ld);
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {  // r[4i+m] lane L = rows 4i..4i+3 of column 4L+m
      r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
      r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
      r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
      r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
#pragma GCC unroll 4
    for (int m = 0; m < 4; ++m) {
      const __m512 a02b02 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x88);
      const __m512 a13b13 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xDD);
      const __m512 c02d02 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x88);
      const __m512 c13d13 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xDD);
      _mm512_storeu_ps(dst + (0 + m) * dst_ld, _mm512_shuffle_f32x4(a02b02, c02d02, 0x88));
      _mm512_storeu_ps(dst + (8 + m) * dst_ld, _mm512_shuffle_f32x4(a02b02, c02d02, 0xDD));
      _mm512_storeu_ps(dst + (4 + m) * dst_ld, _mm512_shuffle_f32x4(a13b13, c13d13, 0x88));
      _mm512_storeu_ps(dst + (12 + m) * dst_ld, _mm512_shuffle_f32x4(a13b13, c13d13, 0xDD));
    }
  }

  // C[R x ncols] (+)= Ap[kc][AS](rows < R) * Bp[kc][32]. Fully unrolled over R so the accumulator
  // arrays live in registers.
  template <int R>
  static void tile(int64_t kc, const float* __restrict Ap, const float* __restrict Bp, float* C, int64_t ldc, int ncols,
                   bool accumulate) {
    __m512 c0[R], c1[R];  // row i: columns 0-15 and 16-31
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; ++k) {
      const __m512 b0 = _mm512_load_ps(Bp + k * NR);
      const __m512 b1 = _mm512_load_ps(Bp + k * NR + 16);
      const float* a = Ap + k * AS;
#pragma GCC unroll 14
      for (int i = 0; i < R; ++i) {
        const __m512 ai = _mm512_set1_ps(a[i]);
        c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
        c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
      }
    }
    const __mmask16 m0 = ncols >= 16 ? __mmask16(0xffff) : __mmask16((1u << ncols) - 1u);
    const __mmask16 m1 = ncols >= 32  ? __mmask16(0xffff)
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
