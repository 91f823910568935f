// Attention operand packing: argument checks, the dispatch lists and the entry points
// (ops/kernels/pack_attn.h).
//
// Order: the AVX2 version (AVX2 + F16C, the build's baseline ISA), then the reference. There is no AVX-512
// version.
#include "ops/kernels/pack_attn.h"

#include <array>

#include "core/error.h"

namespace mpq::kernels {
namespace {
int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// The checks every packed struct shares: pointers, positive sizes, ldb, Np.
template <class Src, class PW>
void check_common(const char* op, const PackAttnArgs<Src, PW>& a, bool cols) {
  check(a.w != nullptr, "{}: the packed operand w is null", op);
  const int64_t N = a.w->N, K = a.w->K;
  check(N > 0 && K > 0, "{}: need N > 0 and K > 0, got N={} K={}", op, N, K);
  check(a.B != nullptr, "{}: the source B is null (N={} K={})", op, N, K);
  check(a.ldb >= (cols ? N : K), "{}: ldb={} < {}={} (the source row length)", op, a.ldb, cols ? "N" : "K",
        cols ? N : K);
  check(a.w->Np == round_up(N, kLowpNR), "{}: Np={} is not N={} rounded up to {}", op, a.w->Np, N, kLowpNR);
  check(a.w->w.data() != nullptr, "{}: the packed buffer is not allocated (N={} K={})", op, N, K);
}

constexpr std::array<PackAttnQ8List::Impl, 2> kQ8RowsImpls{{
    {"pack_attn_qu8_rows__avx2", Isa::avx2, nullptr, &pack_attn_qu8_rows__avx2},
    {"pack_attn_qu8_rows_ref", Isa::ref, nullptr, &pack_attn_qu8_rows_ref},
}};
constexpr std::array<PackAttnQ8List::Impl, 2> kQ8ColsImpls{{
    {"pack_attn_qu8_cols__avx2", Isa::avx2, nullptr, &pack_attn_qu8_cols__avx2},
    {"pack_attn_qu8_cols_ref", Isa::ref, nullptr, &pack_attn_qu8_cols_ref},
}};
constexpr std::array<PackAttnF16List::Impl, 2> kF16RowsImpls{{
    {"pack_attn_f32_f16_rows__avx2", Isa::avx2, nullptr, &pack_attn_f32_f16_rows__avx2},
    {"pack_attn_f32_f16_rows_ref", Isa::ref, nullptr, &pack_attn_f32_f16_rows_ref},
}};
constexpr std::array<PackAttnF16List::Impl, 2> kF16ColsImpls{{
    {"pack_attn_f32_f16_cols__avx2", Isa::avx2, nullptr, &pack_attn_f32_f16_cols__avx2},
    {"pack_attn_f32_f16_cols_ref", Isa::ref, nullptr, &pack_attn_f32_f16_cols_ref},
}};
constexpr std::array<PackAttnBF16List::Impl, 2> kBF16RowsImpls{{
    {"pack_attn_f32_bf16_rows__avx2", Isa::avx2, nullptr, &pack_attn_f32_bf16_rows__avx2},
    {"pack_attn_f32_bf16_rows_ref", Isa::ref, nullptr, &pack_attn_f32_bf16_rows_ref},
}};
constexpr std::array<PackAttnBF16List::Impl, 2> kBF16ColsImpls{{
    {"pack_attn_f32_bf16_cols__avx2", Isa::avx2, nullptr, &pack_attn_f32_bf16_cols__avx2},
    {"pack_attn_f32_bf16_cols_ref", Isa::ref, nullptr, &pack_attn_f32_bf16_cols_ref},
}};
}  // namespace

void check_pack_attn_args(const char* op, const PackAttnQ8Args& a, bool cols) {
  check_common(op, a, cols);
  const PackedQ8W& w = *a.w;
  check(w.Kp == round_up(w.K, 4), "{}: Kp={} is not K={} rounded up to 4", op, w.Kp, w.K);
  check(w.w.bytes >= size_t(w.Np * w.Kp), "{}: packed buffer holds {} bytes, int8 [{}/32][{}/4][32][4] needs {}", op,
        w.w.bytes, w.Np, w.Kp, w.Np * w.Kp);
  check(int64_t(w.colsum.size()) >= w.Np, "{}: colsum holds {} entries, Np={}", op, w.colsum.size(), w.Np);
}

void check_pack_attn_args(const char* op, const PackAttnF16Args& a, bool cols) {
  check_common(op, a, cols);
  const PackedF16W& w = *a.w;
  check(w.w.bytes >= size_t(w.Np * w.K) * 2, "{}: packed buffer holds {} bytes, f16 [{}/32][{}][32] needs {}", op,
        w.w.bytes, w.Np, w.K, w.Np * w.K * 2);
}

void check_pack_attn_args(const char* op, const PackAttnBF16Args& a, bool cols) {
  check_common(op, a, cols);
  const PackedBF16W& w = *a.w;
  check(w.Kp == round_up(w.K, 2), "{}: Kp={} is not K={} rounded up to 2", op, w.Kp, w.K);
  check(w.w.bytes >= size_t(w.Np * w.Kp) * 2, "{}: packed buffer holds {} bytes, bf16 [{}/32][{}/2][32][2] needs {}",
        op, w.w.bytes, w.Np, w.Kp, w.Np * w.Kp * 2);
}

const PackAttnQ8List& pack_attn_qu8_rows_list() {
  static const PackAttnQ8List list("pack_attn_qu8_rows", kQ8RowsImpls);
  return list;
}
const PackAttnQ8List& pack_attn_qu8_cols_list() {
  static const PackAttnQ8List list("pack_attn_qu8_cols", kQ8ColsImpls);
  return list;
}
const PackAttnF16List& pack_attn_f32_f16_rows_list() {
  static const PackAttnF16List list("pack_attn_f32_f16_rows", kF16RowsImpls);
  return list;
}
const PackAttnF16List& pack_attn_f32_f16_cols_list() {
  static const PackAttnF16List list("pack_attn_f32_f16_cols", kF16ColsImpls);
  return list;
}
const PackAttnBF16List& pack_attn_f32_bf16_rows_list() {
  static const PackAttnBF16List list("pack_attn_f32_bf16_rows", kBF16RowsImpls);
  return list;
}
const PackAttnBF16List& pack_attn_f32_bf16_cols_list() {
  static const PackAttnBF16List list("pack_attn_f32_bf16_cols", kBF16ColsImpls);
  return list;
}

void pack_attn_qu8_rows(const PackAttnQ8Args& a) {
  check_pack_attn_args("pack_attn_qu8_rows", a, false);
  pack_attn_qu8_rows_list().select(a).fn(a);
}
void pack_attn_qu8_cols(const PackAttnQ8Args& a) {
  check_pack_attn_args("pack_attn_qu8_cols", a, true);
  pack_attn_qu8_cols_list().select(a).fn(a);
}
void pack_attn_f32_f16_rows(const PackAttnF16Args& a) {
  check_pack_attn_args("pack_attn_f32_f16_rows", a, false);
  pack_attn_f32_f16_rows_list().select(a).fn(a);
}
void pack_attn_f32_f16_cols(const PackAttnF16Args& a) {
  check_pack_attn_args("pack_attn_f32_f16_cols", a, true);
  pack_attn_f32_f16_cols_list().select(a).fn(a);
}
void pack_attn_f32_bf16_rows(const PackAttnBF16Args& a) {
  check_pack_attn_args("pack_attn_f32_bf16_rows", a, false);
  pack_attn_f32_bf16_rows_list().select(a).fn(a);
}
void pack_attn_f32_bf16_cols(const PackAttnBF16Args& a) {
  check_pack_attn_args("pack_attn_f32_bf16_cols", a, true);
  pack_attn_f32_bf16_cols_list().select(a).fn(a);
}

}  // namespace mpq::kernels
