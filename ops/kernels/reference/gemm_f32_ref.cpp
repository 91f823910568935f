// Reference fp32 GEMM: plain triple loop, double accumulation. The oracle for every other GEMM.
#include "ops/kernels/f32_impls.h"

namespace mpq::kernels {

void gemm_f32_ref(const GemmArgs& g) {
  check_gemm_args(g);
  // op(A)(i,k): A is [M, lda] (no trans) or [K, lda] (trans); op(B)(k,j) likewise.
  for (int64_t i = 0; i < g.M; ++i) {
    for (int64_t j = 0; j < g.N; ++j) {
      double acc = 0.0;
      for (int64_t k = 0; k < g.K; ++k) {
        const float a = g.trans_a ? g.A[k * g.lda + i] : g.A[i * g.lda + k];
        const float b = g.trans_b ? g.B[j * g.ldb + k] : g.B[k * g.ldb + j];
        acc += double(a) * double(b);
      }
      float& c = g.C[i * g.ldc + j];
      c = (g.beta == 0.0f ? 0.0f : g.beta * c) + float(acc);
    }
  }
}

}  // namespace mpq::kernels
