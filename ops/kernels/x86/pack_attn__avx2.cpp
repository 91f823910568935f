// AVX2 + F16C attention operand packing (ops/kernels/pack_attn.h), bit-exact against
// ops/kernels/reference/pack_attn_ref.cpp. Each element of B is read once and written once:
//   qu8 rows: 8 rows x 32 k per step, an 8 x 8 dword transpose (one dword = 4 consecutive k of a column),
//             column sums by vpsadbw; K tail and the last N % 8 rows by dword / byte copies.
//   qu8 cols: full 32-column panels 4 rows (one k-step) at a time, a 4 x 32 byte transpose into the panel's
//             128-byte k-step; column sums in u16 lanes flushed every 256 rows; K % 4 tail rows and the
//             last partial panel byte by byte.
//   f16 rows / cols: vcvtps2ph (imm 0: round to nearest even) of 8 values, f32_to_f16 on the tails.
//   bf16 rows / cols: bf16x8 (below) of 8 values, f32_to_bf16 on the tails; cols interleaves the two rows
//             of a k pair.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <initializer_list>

#include "core/dtype.h"
#include "ops/kernels/pack_attn.h"

namespace mpq::kernels {

namespace {
// 8 x f32 -> 8 x bf16, round to nearest even, NaN -> quiet NaN: core/dtype.h f32_to_bf16 lane by lane.
__m128i bf16x8(__m256 f) {
  const __m256i u = _mm256_castps_si256(f);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(f, f, _CMP_UNORD_Q));
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  r = _mm256_blendv_epi8(r, quiet, nan);
  // 32-bit lanes hold values < 2^16: pack to 16 bits (packus per 128-bit lane, then fix the lane order)
  const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
  return _mm256_castsi256_si128(p);
}
}  // namespace

void pack_attn_qu8_rows__avx2(const PackAttnQ8Args& args) {
  const uint8_t* B = args.B;  // [N, ldb] u8
  const int64_t ldb = args.ldb;
  PackedQ8W& w = *args.w;
  const int64_t N = w.N, K = w.K, ks = w.Kp / 4;
  const int64_t n8 = N / 8 * 8, k32 = K / 32 * 32;
  uint8_t* dst = w.w.data();
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  // 8 columns (rows of B) x 32 k at a time: an 8 x 8 dword transpose turns the 8 rows of 8 dwords into,
  // per k-step, the 8 columns' dwords, which are 32 contiguous bytes of the panel's 128-byte step.
  for (int64_t n0 = 0; n0 < n8; n0 += 8) {
    uint8_t* d = dst + (n0 / 32) * ks * 128 + (n0 % 32) * 4;
    __m256i sad[8];  // per row: u8 sums of the full 32-byte blocks, in 4 64-bit lanes
    for (auto& v : sad) v = _mm256_setzero_si256();
    for (int64_t k0 = 0; k0 < k32; k0 += 32) {
      __m256i r[8];
      for (int i = 0; i < 8; ++i) {
        r[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(B + (n0 + i) * ldb + k0));
        sad[i] = _mm256_add_epi64(sad[i], _mm256_sad_epu8(r[i], _mm256_setzero_si256()));
      }
      // 8 x 8 transpose of 32-bit elements: r[i] dword j -> t[j] dword i.
      const __m256i a0 = _mm256_unpacklo_epi32(r[0], r[1]), a1 = _mm256_unpackhi_epi32(r[0], r[1]);
      const __m256i a2 = _mm256_unpacklo_epi32(r[2], r[3]), a3 = _mm256_unpackhi_epi32(r[2], r[3]);
      const __m256i a4 = _mm256_unpacklo_epi32(r[4], r[5]), a5 = _mm256_unpackhi_epi32(r[4], r[5]);
      const __m256i a6 = _mm256_unpacklo_epi32(r[6], r[7]), a7 = _mm256_unpackhi_epi32(r[6], r[7]);
      const __m256i b0 = _mm256_unpacklo_epi64(a0, a2), b1 = _mm256_unpackhi_epi64(a0, a2);
      const __m256i b2 = _mm256_unpacklo_epi64(a1, a3), b3 = _mm256_unpackhi_epi64(a1, a3);
      const __m256i b4 = _mm256_unpacklo_epi64(a4, a6), b5 = _mm256_unpackhi_epi64(a4, a6);
      const __m256i b6 = _mm256_unpacklo_epi64(a5, a7), b7 = _mm256_unpackhi_epi64(a5, a7);
      const __m256i t[8] = {_mm256_permute2x128_si256(b0, b4, 0x20), _mm256_permute2x128_si256(b1, b5, 0x20),
                            _mm256_permute2x128_si256(b2, b6, 0x20), _mm256_permute2x128_si256(b3, b7, 0x20),
                            _mm256_permute2x128_si256(b0, b4, 0x31), _mm256_permute2x128_si256(b1, b5, 0x31),
                            _mm256_permute2x128_si256(b2, b6, 0x31), _mm256_permute2x128_si256(b3, b7, 0x31)};
      for (int j = 0; j < 8; ++j)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + (k0 / 4 + j) * 128), _mm256_xor_si256(t[j], flip));
    }
    for (int i = 0; i < 8; ++i) {
      alignas(32) int64_t lanes[4];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), sad[i]);
      w.colsum[size_t(n0 + i)] = int32_t(lanes[0] + lanes[1] + lanes[2] + lanes[3]) - 128 * int32_t(k32);
    }
  }
  // Edges: the K tail of the first n8 columns, every k of the last N % 8 columns (dword copies).
  auto scalar = [&](int64_t n_lo, int64_t n_hi, int64_t k_lo) {
    for (int64_t n = n_lo; n < n_hi; ++n) {
      const uint8_t* src = B + n * ldb;  // [K] u8
      uint8_t* d = dst + (n / 32) * ks * 128 + (n % 32) * 4;
      int32_t s = k_lo == 0 ? 0 : w.colsum[size_t(n)];
      int64_t k = k_lo;
      for (; k + 4 <= K; k += 4) {  // one dword: 4 consecutive k of column n
        uint32_t v;
        std::memcpy(&v, src + k, 4);
        v ^= 0x80808080u;  // u8 - 128 as s8
        std::memcpy(d + (k / 4) * 128, &v, 4);
        s += int8_t(v) + int8_t(v >> 8) + int8_t(v >> 16) + int8_t(v >> 24);
      }
      for (; k < K; ++k) {
        const int8_t v = int8_t(src[k] ^ 0x80u);
        d[(k / 4) * 128 + k % 4] = uint8_t(v);
        s += v;
      }
      w.colsum[size_t(n)] = s;
    }
  };
  scalar(0, n8, k32);
  scalar(n8, N, 0);
}

void pack_attn_qu8_cols__avx2(const PackAttnQ8Args& args) {
  const uint8_t* B = args.B;  // [K, ldb] u8
  const int64_t ldb = args.ldb;
  PackedQ8W& w = *args.w;
  const int64_t N = w.N, K = w.K, ks = w.Kp / 4;
  const int64_t n_full = N / 32 * 32, k_full = K / 4 * 4;
  uint8_t* dst = w.w.data();
  std::fill(w.colsum.begin(), w.colsum.begin() + N, 0);
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  // Full 32-column panels, 4 rows at a time: a 4 x 32 byte transpose (unpack bytes, then 16-bit pairs,
  // then 128-bit lanes) gives the panel's 128-byte k-step [32 columns][4 k] directly.
  for (int64_t n0 = 0; n0 < n_full; n0 += 32) {
    uint8_t* panel = dst + (n0 / 32) * ks * 128;
    alignas(32) int32_t sums[32] = {};                                         // raw u8 column sums
    __m256i acc_lo = _mm256_setzero_si256(), acc_hi = _mm256_setzero_si256();  // u16 sums of cols 0-15 / 16-31
    int64_t pending = 0;  // rows in the u16 accumulators (flushed before 257: 257 * 255 > 65535)
    auto flush = [&] {
      alignas(32) uint16_t lo[16], hi[16];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lo), acc_lo);
      _mm256_store_si256(reinterpret_cast<__m256i*>(hi), acc_hi);
      for (int j = 0; j < 16; ++j) sums[j] += lo[j], sums[16 + j] += hi[j];
      acc_lo = acc_hi = _mm256_setzero_si256();
      pending = 0;
    };
    auto accumulate = [&](__m256i r) {
      acc_lo = _mm256_add_epi16(acc_lo, _mm256_cvtepu8_epi16(_mm256_castsi256_si128(r)));
      acc_hi = _mm256_add_epi16(acc_hi, _mm256_cvtepu8_epi16(_mm256_extracti128_si256(r, 1)));
      if (++pending == 256) flush();
    };
    for (int64_t k0 = 0; k0 < k_full; k0 += 4) {
      const uint8_t* s = B + k0 * ldb + n0;  // rows k0..k0+3, columns n0..n0+31
      const __m256i r0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s));
      const __m256i r1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + ldb));
      const __m256i r2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 2 * ldb));
      const __m256i r3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 3 * ldb));
      for (__m256i r : {r0, r1, r2, r3}) accumulate(r);
      const __m256i t0 = _mm256_unpacklo_epi8(r0, r1), t1 = _mm256_unpackhi_epi8(r0, r1);
      const __m256i t2 = _mm256_unpacklo_epi8(r2, r3), t3 = _mm256_unpackhi_epi8(r2, r3);
      const __m256i u0 = _mm256_unpacklo_epi16(t0, t2);  // columns 0-3 | 16-19, one dword per column
      const __m256i u1 = _mm256_unpackhi_epi16(t0, t2);  // 4-7 | 20-23
      const __m256i u2 = _mm256_unpacklo_epi16(t1, t3);  // 8-11 | 24-27
      const __m256i u3 = _mm256_unpackhi_epi16(t1, t3);  // 12-15 | 28-31
      uint8_t* d = panel + (k0 / 4) * 128;
      _mm256_store_si256(reinterpret_cast<__m256i*>(d),
                         _mm256_xor_si256(_mm256_permute2x128_si256(u0, u1, 0x20), flip));
      _mm256_store_si256(reinterpret_cast<__m256i*>(d + 32),
                         _mm256_xor_si256(_mm256_permute2x128_si256(u2, u3, 0x20), flip));
      _mm256_store_si256(reinterpret_cast<__m256i*>(d + 64),
                         _mm256_xor_si256(_mm256_permute2x128_si256(u0, u1, 0x31), flip));
      _mm256_store_si256(reinterpret_cast<__m256i*>(d + 96),
                         _mm256_xor_si256(_mm256_permute2x128_si256(u2, u3, 0x31), flip));
    }
    flush();
    for (int j = 0; j < 32; ++j) w.colsum[size_t(n0 + j)] = sums[j] - 128 * int32_t(k_full);
  }
  // Edges: the K tail rows of the full panels, and every row of the last partial panel.
  auto scalar = [&](int64_t n_lo, int64_t n_hi, int64_t k_lo, int64_t k_hi) {
    for (int64_t k = k_lo; k < k_hi; ++k) {
      const uint8_t* src = B + k * ldb;  // row k: [N] u8
      for (int64_t n = n_lo; n < n_hi; ++n) {
        const int8_t v = int8_t(src[n] ^ 0x80u);
        dst[((n / 32) * ks + k / 4) * 128 + (n % 32) * 4 + k % 4] = uint8_t(v);
        w.colsum[size_t(n)] += v;
      }
    }
  };
  scalar(0, n_full, k_full, K);
  scalar(n_full, N, 0, K);
}

void pack_attn_f32_f16_rows__avx2(const PackAttnF16Args& args) {
  const float* B = args.B;  // [N, ldb]
  const int64_t ldb = args.ldb;
  PackedF16W& w = *args.w;
  const int64_t N = w.N, K = w.K;
  auto* dst = reinterpret_cast<uint16_t*>(w.w.data());
  for (int64_t n = 0; n < N; ++n) {
    const float* src = B + n * ldb;  // [K]
    uint16_t* d = dst + (n / 32) * K * 32 + n % 32;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {  // F16C: 8 roundings at once, then 8 strided stores
      alignas(16) uint16_t h[8];
      _mm_store_si128(reinterpret_cast<__m128i*>(h),
                      _mm256_cvtps_ph(_mm256_loadu_ps(src + k), _MM_FROUND_TO_NEAREST_INT));
      for (int j = 0; j < 8; ++j) d[(k + j) * 32] = h[j];
    }
    for (; k < K; ++k) d[k * 32] = f32_to_f16(src[k]);
  }
}

void pack_attn_f32_f16_cols__avx2(const PackAttnF16Args& args) {
  const float* B = args.B;  // [K, ldb]
  const int64_t ldb = args.ldb;
  PackedF16W& w = *args.w;
  const int64_t N = w.N, K = w.K;
  auto* dst = reinterpret_cast<uint16_t*>(w.w.data());
  for (int64_t k = 0; k < K; ++k) {
    const float* src = B + k * ldb;  // row k: [N]
    int64_t n = 0;
    for (; n + 8 <= N; n += 8) {  // 8 consecutive columns stay inside one 32-column panel (n % 8 == 0)
      const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + n), _MM_FROUND_TO_NEAREST_INT);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + ((n / 32) * K + k) * 32 + n % 32), h);
    }
    for (; n < N; ++n) dst[((n / 32) * K + k) * 32 + n % 32] = f32_to_f16(src[n]);
  }
}

void pack_attn_f32_bf16_rows__avx2(const PackAttnBF16Args& args) {
  const float* B = args.B;  // [N, ldb]
  const int64_t ldb = args.ldb;
  PackedBF16W& w = *args.w;
  const int64_t N = w.N, K = w.K, kp2 = w.Kp / 2;
  auto* dst = reinterpret_cast<uint16_t*>(w.w.data());
  for (int64_t n = 0; n < N; ++n) {
    const float* src = B + n * ldb;  // [K]
    uint16_t* d = dst + (n / 32) * kp2 * 64 + (n % 32) * 2;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {  // 8 roundings at once; pairs (k, k+1) are one dword every 128 bytes
      alignas(16) uint32_t pairs[4];
      _mm_store_si128(reinterpret_cast<__m128i*>(pairs), bf16x8(_mm256_loadu_ps(src + k)));
      for (int j = 0; j < 4; ++j) std::memcpy(d + ((k / 2) + j) * 64, &pairs[j], 4);
    }
    for (; k < K; ++k) d[(k / 2) * 64 + k % 2] = f32_to_bf16(src[k]);
  }
}

void pack_attn_f32_bf16_cols__avx2(const PackAttnBF16Args& args) {
  const float* B = args.B;  // [K, ldb]
  const int64_t ldb = args.ldb;
  PackedBF16W& w = *args.w;
  const int64_t N = w.N, K = w.K, kp2 = w.Kp / 2;
  auto* dst = reinterpret_cast<uint16_t*>(w.w.data());
  const int64_t k_even = K / 2 * 2;
  for (int64_t k = 0; k < k_even; k += 2) {
    const float* r0 = B + k * ldb;  // rows k and k + 1: [N]
    const float* r1 = r0 + ldb;
    int64_t n = 0;
    for (; n + 8 <= N; n += 8) {  // interleave 8 columns of the two rows: (n, k), (n, k+1), (n+1, k), ...
      const __m128i a = bf16x8(_mm256_loadu_ps(r0 + n)), b = bf16x8(_mm256_loadu_ps(r1 + n));
      uint16_t* d = dst + ((n / 32) * kp2 + k / 2) * 64 + (n % 32) * 2;  // 8 columns stay inside one panel
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d), _mm_unpacklo_epi16(a, b));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 8), _mm_unpackhi_epi16(a, b));
    }
    for (; n < N; ++n) {
      uint16_t* d = dst + ((n / 32) * kp2 + k / 2) * 64 + (n % 32) * 2;
      d[0] = f32_to_bf16(r0[n]), d[1] = f32_to_bf16(r1[n]);
    }
  }
  for (int64_t k = k_even; k < K; ++k) {
    const float* src = B + k * ldb;  // odd last row
    for (int64_t n = 0; n < N; ++n) dst[((n / 32) * kp2 + k / 2) * 64 + (n % 32) * 2 + k % 2] = f32_to_bf16(src[n]);
  }
}

}  // namespace mpq::kernels
