// oneDNN alternatives for the int8 and bf16 GEMMs (oneDNN 2.6 matmul; brgemm/VNNI and bf16 kernels).
//
// int8: u8 (or s8) src [M,K] x s8 weights [K,N] (oneDNN's choice of layout, reordered once per
// primitive from our packed weights), per-channel output scales sa*sw[n] (/ out_scale for u8 dst),
// runtime src zero point, dst zero point, f32 bias and an eltwise clip for the activation. oneDNN 2.x
// adds the bias in the accumulator domain (dst = oscale * (acc + bias)), so the bias is passed as
// bias[n] / (sa*sw[n]). Its rounding order differs from ours: results agree within the tolerances in
// tests/test_kernels_lowp.cpp, not bit-exactly. Residuals are not offered (supports() in gemm_lowp.cpp).
// bf16: bf16 src x bf16 weights -> f32 dst, f32 bias, clip.
// Primitives (and their reordered weights) are cached per (packed-weights id, M, strides, epilogue).
#include <fmt/format.h>

#include <vector>

#include "ops/kernels/lowp.h"
#include "ops/kernels/onednn/onednn_context.h"

namespace mpq::kernels {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

struct LowpMatmulEntry {
  dnnl::matmul prim;
  memory::desc a, c;
  memory wts;  // weights in the primitive's layout (owned)
  memory::desc bias;
};

void add_clip(dnnl::primitive_attr& attr, float lo, float hi) {
  if (lo == -std::numeric_limits<float>::infinity() && hi == std::numeric_limits<float>::infinity()) return;
  dnnl::post_ops ops;
  ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip_v2, lo, hi);
  attr.set_post_ops(ops);
}

LowpMatmulEntry make_q8(const Q8GemmArgs& g) {
  const PackedQ8W& w = *g.w;
  const int64_t M = g.M, N = w.N, K = w.K;
  const bool u8out = g.ep.out == DType::u8;
  LowpMatmulEntry e;
  e.a = memory::desc({M, K}, g.a_signed ? dt::s8 : dt::u8, memory::dims{g.lda, 1});
  e.c = memory::desc({M, N}, u8out ? dt::u8 : dt::f32, memory::dims{g.ldc, 1});
  const memory::desc w_any({K, N}, dt::s8, tag::any);
  const memory::desc b_md({1, N}, dt::f32, tag::ab);
  dnnl::primitive_attr attr;
  std::vector<float> osc(static_cast<size_t>(N));  // [N]
  const float inv_os = u8out ? 1.0f / g.ep.out_scale : 1.0f;
  for (int64_t n = 0; n < N; ++n) osc[size_t(n)] = g.sa * w.scale[size_t(n)] * inv_os;
  attr.set_output_scales(1 << 1, osc);
  if (g.za != 0) attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
  if (u8out && g.ep.out_zp != 0) attr.set_zero_points(DNNL_ARG_DST, 0, {g.ep.out_zp});
  add_clip(attr, g.ep.clamp_lo * inv_os, g.ep.clamp_hi * inv_os);
  const dnnl::matmul::desc d =
      g.ep.bias ? dnnl::matmul::desc(e.a, w_any, b_md, e.c) : dnnl::matmul::desc(e.a, w_any, e.c);
  const dnnl::matmul::primitive_desc pd(d, attr, onednn::engine());
  e.prim = dnnl::matmul(pd);
  // Weights: our packed layout -> plain [K, N] -> the primitive's layout.
  std::vector<int8_t> plain(size_t(K * N));  // s8 [K, N]
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) plain[size_t(k * N + n)] = w.at(n, k);
  memory src_w({{K, N}, dt::s8, tag::ab}, onednn::engine(), plain.data());
  e.wts = memory(pd.weights_desc(), onednn::engine());
  dnnl::reorder(src_w, e.wts).execute(onednn::stream(), src_w, e.wts);
  e.bias = b_md;
  onednn::stream().wait();
  return e;
}

LowpMatmulEntry make_bf16(const BF16GemmArgs& g) {
  const PackedBF16W& w = *g.w;
  const int64_t M = g.M, N = w.N, K = w.K;
  LowpMatmulEntry e;
  e.a = memory::desc({M, K}, dt::bf16, memory::dims{g.lda, 1});
  e.c = memory::desc({M, N}, dt::f32, memory::dims{g.ldc, 1});
  const memory::desc w_any({K, N}, dt::bf16, tag::any);
  const memory::desc b_md({1, N}, dt::f32, tag::ab);
  dnnl::primitive_attr attr;
  add_clip(attr, g.ep.clamp_lo, g.ep.clamp_hi);
  const dnnl::matmul::desc d =
      g.ep.bias ? dnnl::matmul::desc(e.a, w_any, b_md, e.c) : dnnl::matmul::desc(e.a, w_any, e.c);
  const dnnl::matmul::primitive_desc pd(d, attr, onednn::engine());
  e.prim = dnnl::matmul(pd);
  std::vector<uint16_t> plain(size_t(K * N));  // bf16 [K, N]
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) plain[size_t(k * N + n)] = w.at(n, k);
  memory src_w({{K, N}, dt::bf16, tag::ab}, onednn::engine(), plain.data());
  e.wts = memory(pd.weights_desc(), onednn::engine());
  dnnl::reorder(src_w, e.wts).execute(onednn::stream(), src_w, e.wts);
  e.bias = b_md;
  onednn::stream().wait();
  return e;
}

// The key holds whether there is a bias, never its address or values: bias data is bound per call.
std::string epi_key(const LowpEpilogue& ep) {
  return fmt::format("{}:{}:{}:{}:{}:{}", ep.bias != nullptr, ep.clamp_lo, ep.clamp_hi, int(ep.out), ep.out_scale,
                     ep.out_zp);
}

}  // namespace

void gemm_qu8_qc8w__onednn(const Q8GemmArgs& g) {
  check_q8_args(g);
  check(g.ep.residual == nullptr, "gemm_qu8_qc8w__onednn: residual add is not supported");
  if (g.M == 0) return;
  const FixedTeam team;  // oneDNN balances a primitive for the thread count at its creation
  const std::string key = fmt::format("lowp_q8:{}:{}:{}:{}:{}:{}:{}:{}:t{}", g.w->id, g.M, g.lda, g.ldc,
                                      int(g.a_signed), g.sa, g.za != 0, epi_key(g.ep), team.threads());
  auto e = onednn::primitive_cache().get_or_create<LowpMatmulEntry>(key, [&] { return make_q8(g); });
  auto& eng = onednn::engine();
  memory a(e->a, eng, const_cast<uint8_t*>(g.A)), c(e->c, eng, g.C);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, e->wts}, {DNNL_ARG_DST, c}};
  int32_t zp = g.za;
  memory zp_mem;
  if (g.za != 0) {
    zp_mem = memory({{1}, dt::s32, tag::x}, eng, &zp);
    args.emplace(DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, zp_mem);
  }
  thread_local std::vector<float> bias_q;  // [N] bias in the accumulator domain: bias[n] / (sa * sw[n])
  memory bias;
  if (g.ep.bias) {
    bias_q.resize(size_t(g.w->N));
    for (int64_t n = 0; n < g.w->N; ++n) bias_q[size_t(n)] = g.ep.bias[n] / (g.sa * g.w->scale[size_t(n)]);
    bias = memory(e->bias, eng, bias_q.data());
    args.emplace(DNNL_ARG_BIAS, bias);
  }
  e->prim.execute(onednn::stream(), args);
  onednn::stream().wait();
}

void gemm_bf16__onednn(const BF16GemmArgs& g) {
  check_bf16_args(g);
  check(!g.a_f32 && g.ep.residual == nullptr && g.ep.out == DType::f32,
        "gemm_bf16__onednn: needs bf16 A, f32 output and no residual");
  if (g.M == 0) return;
  const FixedTeam team;  // oneDNN balances a primitive for the thread count at its creation
  const std::string key =
      fmt::format("lowp_bf16:{}:{}:{}:{}:{}:t{}", g.w->id, g.M, g.lda, g.ldc, epi_key(g.ep), team.threads());
  auto e = onednn::primitive_cache().get_or_create<LowpMatmulEntry>(key, [&] { return make_bf16(g); });
  auto& eng = onednn::engine();
  memory a(e->a, eng, const_cast<void*>(g.A)), c(e->c, eng, g.C);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, e->wts}, {DNNL_ARG_DST, c}};
  memory bias;
  if (g.ep.bias) {
    bias = memory(e->bias, eng, const_cast<float*>(g.ep.bias));
    args.emplace(DNNL_ARG_BIAS, bias);
  }
  e->prim.execute(onednn::stream(), args);
  onednn::stream().wait();
}

}  // namespace mpq::kernels
