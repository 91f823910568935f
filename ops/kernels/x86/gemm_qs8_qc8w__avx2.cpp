// W8A8 GEMM fallback for AVX2-only machines (and MPQ_ISA=avx2): same packed weights as the VNNI kernel
// (int8 [Np/32][Kp/4][32][4]). AVX2 has no vpdpbusd and vpmaddubsw saturates (255*127*2 > 32767), so
// both operands are widened to int16 and multiplied with vpmaddwd (exact):
//   16 weight bytes (4 columns x 4 k) -> vpmovsxbw -> 16 s16; the row's 4 activations as s16 broadcast
//   to the same pattern; vpmaddwd -> 8 int32 = (column, k-pair) partial sums; pairs are added at the end.
// Tile 1 row x 32 columns (8 ymm accumulators). The epilogue is lowp_epilogue_scalar, i.e. exactly the
// reference's f32 ops, so outputs are bit-exact like every other integer implementation.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "ops/kernels/lowp.h"

namespace mpq::kernels {
namespace {

// Row m, panel p: acc[32] = sum_k a[m,k] * w[32p + j, k] (raw, before the zero-point correction).
void row_panel(const Q8GemmArgs& g, int64_t m, int64_t p, int32_t* acc) {
  const PackedQ8W& w = *g.w;
  const int64_t ks = w.Kp / 4, K = w.K;
  const int8_t* bp = reinterpret_cast<const int8_t*>(w.w.data()) + p * ks * 128;  // [ks][32][4]
  const uint8_t* a = g.A + m * g.lda;                                             // [K]
  const uint32_t flip = g.a_signed ? 0x80808080u : 0u;
  __m256i c[8];
  for (auto& v : c) v = _mm256_setzero_si256();
  for (int64_t s = 0; s < ks; ++s) {
    uint32_t q = 0;  // 4 activations as u8 (K tail: zeros; they meet zero weights)
    const int64_t n = std::min<int64_t>(4, K - 4 * s);
    std::memcpy(&q, a + 4 * s, size_t(n));
    q ^= flip & (n == 4 ? 0xffffffffu : ((1u << (8 * n)) - 1u));
    const __m256i av = _mm256_cvtepu8_epi16(_mm_set1_epi32(int(q)));  // [a0 a1 a2 a3] x 4 as s16
    for (int j = 0; j < 8; ++j) {
      const __m256i wv = _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(bp + s * 128 + j * 16)));
      c[j] = _mm256_add_epi32(c[j], _mm256_madd_epi16(av, wv));
    }
  }
  alignas(32) int32_t part[64];  // [32 columns][2 k-pairs]
  for (int j = 0; j < 8; ++j) _mm256_store_si256(reinterpret_cast<__m256i*>(part + 8 * j), c[j]);
  for (int j = 0; j < 32; ++j) acc[j] = part[2 * j] + part[2 * j + 1];
}

}  // namespace

void gemm_qu8_qc8w_1x32c4__avx2(const Q8GemmArgs& g) {
  check_q8_args(g);
  const PackedQ8W& w = *g.w;
  const int32_t z = g.a_signed ? g.za + 128 : g.za;
  const int64_t npanels = w.Np / 32;
  const bool par = !omp_in_parallel() && 2.0 * double(g.M) * double(w.N) * double(w.K) > 4e6;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t m = 0; m < g.M; ++m) {
    alignas(32) int32_t acc[32];  // [32] int32
    for (int64_t p = 0; p < npanels; ++p) {
      row_panel(g, m, p, acc);
      for (int64_t j = 0; j < 32 && p * 32 + j < w.N; ++j) {
        const int64_t n = p * 32 + j;
        const float f = float(acc[j] - z * w.colsum[size_t(n)]);
        lowp_epilogue_scalar(g.ep, g.sa * w.scale[size_t(n)], f, m, n, g.C, g.ldc);
      }
    }
  }
}

}  // namespace mpq::kernels
