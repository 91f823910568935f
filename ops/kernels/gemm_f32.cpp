// fp32 GEMM dispatcher: argument checks and the ordered implementation list (see ops/kernels/registry.h).
//
// Order (measured one thread on the 2-core Zen 4 box; GFLOP/s per core, ours vs oneDNN):
//   1. gemm_f32_14x32__avx512  packed-panel GEMM (ops/kernels/x86/) where it measured faster:
//        small problems (<= 2^19 MACs; oneDNN's per-call memory-object setup shows): 64^3 77-85 vs 64-74
//        plain-layout (nn) shapes with 32 <= M <= 256, N <= 4096: 128x3072x768 85-91 vs 75-78
//   2. gemm_f32_6x16__avx2     same predicate, for AVX2-only machines and MPQ_ISA=avx2
//   3. gemm_f32__onednn        oneDNN matmul, everywhere else: it was 10-40% faster for M < 32
//        (4x768x768: 29 vs 100), large M (2048x128x2048: 86 vs 109) and transposed B (512^3 tb: 87 vs 109).
//        Tagged avx2 so MPQ_ISA=ref still means "reference only".
//   4. gemm_f32_ref             the oracle, always last
// supports() here is a speed preference; every entry is correct for all valid arguments (tests run each
// one directly on every shape).
#include <array>

#include "ops/kernels/f32_impls.h"

namespace mpq::kernels {

void check_gemm_args(const GemmArgs& g) {
  check(g.M >= 0 && g.N >= 0 && g.K >= 0, "gemm_f32: negative size M={} N={} K={}", g.M, g.N, g.K);
  check(g.beta == 0.0f || g.beta == 1.0f, "gemm_f32: beta must be 0 or 1, got {}", g.beta);
  if (g.M == 0 || g.N == 0) return;
  check(g.C != nullptr, "gemm_f32: C is null (M={} N={})", g.M, g.N);
  check(g.ldc >= g.N, "gemm_f32: ldc={} < N={}", g.ldc, g.N);
  if (g.K == 0) return;
  check(g.A != nullptr && g.B != nullptr, "gemm_f32: A or B is null (M={} N={} K={})", g.M, g.N, g.K);
  const int64_t min_lda = g.trans_a ? g.M : g.K, min_ldb = g.trans_b ? g.K : g.N;
  check(g.lda >= min_lda, "gemm_f32: lda={} < {} (trans_a={})", g.lda, min_lda, g.trans_a);
  check(g.ldb >= min_ldb, "gemm_f32: ldb={} < {} (trans_b={})", g.ldb, min_ldb, g.trans_b);
}

namespace {
bool packed_gemm_preferred(const GemmArgs& g) {
  const double macs = double(g.M) * double(g.N) * double(g.K);
  return macs <= double(1 << 19) || (!g.trans_a && !g.trans_b && g.M >= 32 && g.M <= 256 && g.N <= 4096);
}

constexpr std::array<GemmList::Impl, 4> kGemmImpls{{
    {"gemm_f32_14x32__avx512", Isa::avx512, &packed_gemm_preferred, &gemm_f32_14x32__avx512},
    {"gemm_f32_6x16__avx2", Isa::avx2, &packed_gemm_preferred, &gemm_f32_6x16__avx2},
    {"gemm_f32__onednn", Isa::avx2, nullptr, &gemm_f32__onednn},
    {"gemm_f32_ref", Isa::ref, nullptr, &gemm_f32_ref},
}};
}  // namespace

const GemmList& gemm_f32_list() {
  static const GemmList list("gemm_f32", kGemmImpls);
  return list;
}

void gemm_f32(const GemmArgs& g) {
  check_gemm_args(g);
  gemm_f32_list().select(g).fn(g);
}

const char* gemm_f32_impl_name(const GemmArgs& g) { return gemm_f32_list().select(g).name; }

}  // namespace mpq::kernels
