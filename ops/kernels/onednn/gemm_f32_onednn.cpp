// fp32 GEMM through a oneDNN matmul primitive, cached per (M, N, K, leading dims, transposes, beta).
// Transposes and leading dimensions are expressed as memory-descriptor strides, so nothing is copied;
// beta == 1 is a "sum" post-op.
#include <fmt/format.h>

#include "ops/kernels/f32_impls.h"
#include "ops/kernels/onednn/onednn_context.h"

namespace mpq::kernels {
namespace {

using dnnl::memory;

struct MatmulEntry {
  dnnl::matmul prim;
  memory::desc a, b, c;
};

MatmulEntry make_matmul(const GemmArgs& g) {
  MatmulEntry e;
  // op(A) [M, K]: element (i, k) at i*lda + k (plain) or k*lda + i (transposed storage).
  e.a = memory::desc({g.M, g.K}, memory::data_type::f32, g.trans_a ? memory::dims{1, g.lda} : memory::dims{g.lda, 1});
  e.b = memory::desc({g.K, g.N}, memory::data_type::f32, g.trans_b ? memory::dims{1, g.ldb} : memory::dims{g.ldb, 1});
  e.c = memory::desc({g.M, g.N}, memory::data_type::f32, memory::dims{g.ldc, 1});
  dnnl::primitive_attr attr;
  if (g.beta != 0.0f) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  dnnl::matmul::desc d(e.a, e.b, e.c);
  e.prim = dnnl::matmul(dnnl::matmul::primitive_desc(d, attr, onednn::engine()));
  return e;
}

}  // namespace

void gemm_f32__onednn(const GemmArgs& g) {
  check_gemm_args(g);
  if (g.M == 0 || g.N == 0) return;
  if (g.K == 0) {  // oneDNN rejects K == 0; C = beta * C
    if (g.beta == 0.0f)
      for (int64_t i = 0; i < g.M; ++i)
        for (int64_t j = 0; j < g.N; ++j) g.C[i * g.ldc + j] = 0.0f;
    return;
  }
  // Thread count in the key: oneDNN primitives are balanced for the thread count at creation.
  const FixedTeam team;
  const std::string key = fmt::format("matmul_f32:{}x{}x{}:{}:{}:{}:{}{}:{}:t{}", g.M, g.N, g.K, g.lda, g.ldb, g.ldc,
                                      int(g.trans_a), int(g.trans_b), g.beta != 0.0f, team.threads());
  auto e = onednn::primitive_cache().get_or_create<MatmulEntry>(key, [&] { return make_matmul(g); });
  auto& eng = onednn::engine();
  memory a(e->a, eng, const_cast<float*>(g.A)), b(e->b, eng, const_cast<float*>(g.B)), c(e->c, eng, g.C);
  e->prim.execute(onednn::stream(), {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
  onednn::stream().wait();
}

}  // namespace mpq::kernels
