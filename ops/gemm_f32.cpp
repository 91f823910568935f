// fp32 GEMM dispatcher: argument checks and the ordered implementation list (see ops/kernel_registry.h).
//
// Order (measured on the 2-core Zen 4 box, bench/bench_fp32.cpp):
//   1. gemm_f32_14x32__avx512  packed-panel GEMM (ops/x86/)
//   2. gemm_f32__onednn         oneDNN matmul; tagged avx2 so MPQ_ISA=ref still means "reference only"
//   3. gemm_f32_6x16__avx2      packed-panel GEMM for AVX2-only machines (and MPQ_ISA=avx2)
//   4. gemm_f32_ref             the oracle, always last
#include <array>

#include "ops/kernels_f32_impls.h"

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
// oneDNN wins only where our driver has nothing to amortise packing over (set from measurements below).
bool onednn_gemm_supports(const GemmArgs& g) { return g.M <= 4; }

constexpr std::array<GemmList::Impl, 4> kGemmImpls{{
    {"gemm_f32_14x32__avx512", Isa::avx512, nullptr, &gemm_f32_14x32__avx512},
    {"gemm_f32__onednn", Isa::avx2, &onednn_gemm_supports, &gemm_f32__onednn},
    {"gemm_f32_6x16__avx2", Isa::avx2, nullptr, &gemm_f32_6x16__avx2},
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
