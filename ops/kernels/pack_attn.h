// Per-call packing of activation operands into the low-precision GEMMs' packed-weight layouts (lowp.h):
// the K and V operands of BERT's attention products, which have no weights to pack once and are packed
// on every call into buffers allocated once (models/native/bert_native.h alloc_attn_*).
//
// The packed operand is W [N, K] (N columns of the product, K its depth), read from a row-major source B:
//   rows: W[n][k] = B[n * ldb + k]    B [N, ldb >= K]   (K of Q K^T: keys are the columns n)
//   cols: W[n][k] = B[k * ldb + n]    B [K, ldb >= N]   (V of P V: head dims are the columns, keys the depth)
// and written in the layout of the packed struct (lowp.h), element (n, k) at
//   PackedQ8W   int8 [Np/32][Kp/4][32][4]  ((n/32)*(Kp/4) + k/4)*128 + (n%32)*4 + k%4   (bytes)
//   PackedF16W  f16  [Np/32][K][32]        ((n/32)*K + k)*32 + n%32                       (uint16 elements)
//   PackedBF16W bf16 [Np/32][Kp/2][32][2]  ((n/32)*(Kp/2) + k/2)*64 + (n%32)*2 + k%2     (uint16 elements)
// Values:
//   qu8 : W = int8(B ^ 0x80) = B - 128 (exact), colsum[n] = sum_k W[n][k] (int32, exact); scale untouched
//   f16 : W = f32_to_f16(B)  (round to nearest even, NaN -> quiet NaN with the payload's top bits; core/dtype.h)
//   bf16: W = f32_to_bf16(B) (round to nearest even, NaN -> quiet NaN; core/dtype.h)
// Only the N x K elements and colsum[0, N) are written; padding columns (n >= N), padding depth (k >= K)
// and colsum[N, Np) keep what the buffer holds (zero as allocated), so every implementation writes the same
// bytes and the padding stays the zero the GEMMs expect.
//
// One list per op, fastest first, the reference last; every implementation is bit-exact against the
// reference (tests/test_pack_attn.cpp compares the whole buffer, padding included).
#pragma once
#include <cstdint>

#include "ops/kernels/lowp.h"
#include "ops/kernels/registry.h"

namespace mpq::kernels {

// One packing call: source B (layout per op above) into the preallocated packed struct *w, whose N, K,
// Np, Kp (and for int8 the colsum vector [Np]) are already set.
template <class Src, class PW>
struct PackAttnArgs {
  const Src* B = nullptr;  // rows: [N, ldb]; cols: [K, ldb] (elements of Src)
  int64_t ldb = 0;         // leading dimension of B in elements
  PW* w = nullptr;
};
using PackAttnQ8Args = PackAttnArgs<uint8_t, PackedQ8W>;
using PackAttnF16Args = PackAttnArgs<float, PackedF16W>;
using PackAttnBF16Args = PackAttnArgs<float, PackedBF16W>;

using PackAttnQ8Fn = void (*)(const PackAttnQ8Args&);
using PackAttnF16Fn = void (*)(const PackAttnF16Args&);
using PackAttnBF16Fn = void (*)(const PackAttnBF16Args&);

// Entry points: validate the arguments, then run the first usable implementation of the op's list.
void pack_attn_qu8_rows(const PackAttnQ8Args& a);
void pack_attn_qu8_cols(const PackAttnQ8Args& a);
void pack_attn_f32_f16_rows(const PackAttnF16Args& a);
void pack_attn_f32_f16_cols(const PackAttnF16Args& a);
void pack_attn_f32_bf16_rows(const PackAttnBF16Args& a);
void pack_attn_f32_bf16_cols(const PackAttnBF16Args& a);

// Reference twins (ops/kernels/reference/pack_attn_ref.cpp): one element at a time.
void pack_attn_qu8_rows_ref(const PackAttnQ8Args& a);
void pack_attn_qu8_cols_ref(const PackAttnQ8Args& a);
void pack_attn_f32_f16_rows_ref(const PackAttnF16Args& a);
void pack_attn_f32_f16_cols_ref(const PackAttnF16Args& a);
void pack_attn_f32_bf16_rows_ref(const PackAttnBF16Args& a);
void pack_attn_f32_bf16_cols_ref(const PackAttnBF16Args& a);

// AVX2 + F16C (ops/kernels/x86/pack_attn__avx2.cpp).
void pack_attn_qu8_rows__avx2(const PackAttnQ8Args& a);       // 8 x 8 dword transpose per 8 rows x 32 k
void pack_attn_qu8_cols__avx2(const PackAttnQ8Args& a);       // 4 x 32 byte transpose per k-step of a panel
void pack_attn_f32_f16_rows__avx2(const PackAttnF16Args& a);  // vcvtps2ph of 8 k, strided stores
void pack_attn_f32_f16_cols__avx2(const PackAttnF16Args& a);  // vcvtps2ph of 8 columns, one 16-byte store
void pack_attn_f32_bf16_rows__avx2(const PackAttnBF16Args& a);
void pack_attn_f32_bf16_cols__avx2(const PackAttnBF16Args& a);  // two rows' 8 columns interleaved per k pair

using PackAttnQ8List = KernelList<PackAttnQ8Args, PackAttnQ8Fn>;
using PackAttnF16List = KernelList<PackAttnF16Args, PackAttnF16Fn>;
using PackAttnBF16List = KernelList<PackAttnBF16Args, PackAttnBF16Fn>;
const PackAttnQ8List& pack_attn_qu8_rows_list();
const PackAttnQ8List& pack_attn_qu8_cols_list();
const PackAttnF16List& pack_attn_f32_f16_rows_list();
const PackAttnF16List& pack_attn_f32_f16_cols_list();
const PackAttnBF16List& pack_attn_f32_bf16_rows_list();
const PackAttnBF16List& pack_attn_f32_bf16_cols_list();

// Argument validation (throws mpq::Error naming the op and the bad field): B and w set, N > 0, K > 0,
// ldb >= the source row length (rows: K, cols: N), Np / Kp the rounded-up N / K and the buffers that large.
void check_pack_attn_args(const char* op, const PackAttnQ8Args& a, bool cols);
void check_pack_attn_args(const char* op, const PackAttnF16Args& a, bool cols);
void check_pack_attn_args(const char* op, const PackAttnBF16Args& a, bool cols);

}  // namespace mpq::kernels
