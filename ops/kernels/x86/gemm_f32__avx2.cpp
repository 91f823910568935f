// AVX2 fp32 GEMM: 6x16 register tile (6 rows x 2 ymm of C = 12 accumulators + 2 B vectors + 1 broadcast
// = 15 of the 16 ymm registers). Per k step: 2 aligned B loads, 6 broadcasts, 12 FMAs.
//
// Blocking: KC = 256 keeps a B micro-panel [256][16] f32 = 16 KiB in half of a 32 KiB L1d;
// MC_TILES = 24 (144 rows): packed A block 144 x 256 x 8 B-stride = 288 KiB in L2; NC = 256 columns:
// packed B chunk 256 x 256 x 4 B = 256 KiB (+ the same again being prefetched) also in L2.
#include <immintrin.h>

#include "ops/kernels/x86/gemm_f32_driver.h"

namespace mpq::kernels {
namespace {

struct Avx2Kernel {
  static constexpr int MR = 6, NR = 16;
  static constexpr int64_t KC = 256, NC = 256;
  static constexpr int MC_TILES = 24;
  static constexpr int TB = 8, AS = 8;  // A panel stride 8 >= MR so A packs with 8x8 transposes

  // 8x8 transpose in registers (unpack, in-lane shuffle, 128-bit lane permute).
  static void transpose_block(const float* src, int64_t ld, float* dst, int64_t dst_ld) {
    __m256 r[8], t[8];  // r: source rows j (8 k each); t: scratch
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(src + j * ld);
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 2; ++i) {  // r[4i+m] lane L = rows 4i..4i+3 of column 4L+m
      r[4 * i + 0] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
      r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
      r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
      r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
#pragma GCC unroll 4
    for (int m = 0; m < 4; ++m) {
      _mm256_storeu_ps(dst + m * dst_ld, _mm256_permute2f128_ps(r[m], r[4 + m], 0x20));
      _mm256_storeu_ps(dst + (4 + m) * dst_ld, _mm256_permute2f128_ps(r[m], r[4 + m], 0x31));
    }
  }

  // C[R x ncols] (+)= Ap[kc][AS](rows < R) * Bp[kc][16].
  template <int R>
  static void tile(int64_t kc, const float* __restrict Ap, const float* __restrict Bp, float* C, int64_t ldc, int ncols,
                   bool accumulate) {
    __m256 c0[R], c1[R];  // row i: columns 0-7 and 8-15
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
      const __m256 b0 = _mm256_load_ps(Bp + k * NR);
      const __m256 b1 = _mm256_load_ps(Bp + k * NR + 8);
      const float* a = Ap + k * AS;
#pragma GCC unroll 6
      for (int i = 0; i < R; ++i) {
        const __m256 ai = _mm256_broadcast_ss(a + i);
        c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
        c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
      }
    }
    if (ncols == NR) {
#pragma GCC unroll 6
      for (int i = 0; i < R; ++i) {
        float* c = C + i * ldc;
        if (accumulate) {
          c0[i] = _mm256_add_ps(c0[i], _mm256_loadu_ps(c));
          c1[i] = _mm256_add_ps(c1[i], _mm256_loadu_ps(c + 8));
        }
        _mm256_storeu_ps(c, c0[i]);
        _mm256_storeu_ps(c + 8, c1[i]);
      }
      return;
    }
    // Column tail: spill the tile and copy the valid part (rare path, N % 16 != 0).
    alignas(32) float buf[R][NR];  // [rows][16]
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      _mm256_store_ps(buf[i], c0[i]);
      _mm256_store_ps(buf[i] + 8, c1[i]);
    }
    for (int i = 0; i < R; ++i) {
      float* c = C + i * ldc;
      for (int j = 0; j < ncols; ++j) c[j] = accumulate ? c[j] + buf[i][j] : buf[i][j];
    }
  }
};

}  // namespace

void gemm_f32_6x16__avx2(const GemmArgs& g) { GemmDriver<Avx2Kernel>::run(g); }

}  // namespace mpq::kernels
