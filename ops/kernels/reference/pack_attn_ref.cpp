// Reference attention operand packing (ops/kernels/pack_attn.h): one element at a time, written at the
// packed struct's index formula. The oracles of tests/test_pack_attn.cpp and the fallback.
#include "core/dtype.h"
#include "ops/kernels/pack_attn.h"

namespace mpq::kernels {
namespace {
// Byte offset of int8 W[n][k] in PackedQ8W: [Np/32][Kp/4][32][4].
int64_t q8_index(int64_t n, int64_t k, int64_t Kp) {
  return ((n / 32) * (Kp / 4) + k / 4) * 128 + (n % 32) * 4 + k % 4;
}
// Element offset of f16 W[n][k] in PackedF16W: [Np/32][K][32].
int64_t f16_index(int64_t n, int64_t k, int64_t K) { return ((n / 32) * K + k) * 32 + n % 32; }
// Element offset of bf16 W[n][k] in PackedBF16W: [Np/32][Kp/2][32][2].
int64_t bf16_index(int64_t n, int64_t k, int64_t Kp) {
  return ((n / 32) * (Kp / 2) + k / 2) * 64 + (n % 32) * 2 + k % 2;
}

// W[n][k] = B[n * sn + k * sk]: rows (sn, sk) = (ldb, 1), cols (1, ldb).
void q8(const PackAttnQ8Args& a, int64_t sn, int64_t sk) {
  PackedQ8W& w = *a.w;
  uint8_t* dst = w.w.data();  // int8 [Np/32][Kp/4][32][4]
  for (int64_t n = 0; n < w.N; ++n) {
    int32_t s = 0;
    for (int64_t k = 0; k < w.K; ++k) {
      const int8_t v = int8_t(a.B[n * sn + k * sk] ^ 0x80u);  // u8 - 128 as s8
      dst[q8_index(n, k, w.Kp)] = uint8_t(v);
      s += v;
    }
    w.colsum[size_t(n)] = s;
  }
}

void f16(const PackAttnF16Args& a, int64_t sn, int64_t sk) {
  PackedF16W& w = *a.w;
  auto* dst = reinterpret_cast<uint16_t*>(w.w.data());  // f16 [Np/32][K][32]
  for (int64_t n = 0; n < w.N; ++n)
    for (int64_t k = 0; k < w.K; ++k) dst[f16_index(n, k, w.K)] = f32_to_f16(a.B[n * sn + k * sk]);
}

void bf16(const PackAttnBF16Args& a, int64_t sn, int64_t sk) {
  PackedBF16W& w = *a.w;
  auto* dst = reinterpret_cast<uint16_t*>(w.w.data());  // bf16 [Np/32][Kp/2][32][2]
  for (int64_t n = 0; n < w.N; ++n)
    for (int64_t k = 0; k < w.K; ++k) dst[bf16_index(n, k, w.Kp)] = f32_to_bf16(a.B[n * sn + k * sk]);
}
}  // namespace

void pack_attn_qu8_rows_ref(const PackAttnQ8Args& a) { q8(a, a.ldb, 1); }
void pack_attn_qu8_cols_ref(const PackAttnQ8Args& a) { q8(a, 1, a.ldb); }
void pack_attn_f32_f16_rows_ref(const PackAttnF16Args& a) { f16(a, a.ldb, 1); }
void pack_attn_f32_f16_cols_ref(const PackAttnF16Args& a) { f16(a, 1, a.ldb); }
void pack_attn_f32_bf16_rows_ref(const PackAttnBF16Args& a) { bf16(a, a.ldb, 1); }
void pack_attn_f32_bf16_cols_ref(const PackAttnBF16Args& a) { bf16(a, 1, a.ldb); }

}  // namespace mpq::kernels
