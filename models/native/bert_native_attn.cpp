// Attention operands of the compiled BERT: per-call packing of K and V for the low-precision GEMMs and the
// exact u8 x u8 attention product (models/native/bert_native.h).
//
// The packing itself is the kernel op of ops/kernels/pack_attn.h (AVX2 with a reference twin); this file
// allocates its buffers and forwards. Packing cost: every element of the head's K (or V) slice is read once
// and written once into an L1/L2-resident buffer: O(L * head_dim) per head, O(L * D) per layer and matmul,
// against O(L^2 * D) MACs.
#include <string>

#include "core/error.h"
#include "models/native/bert_native.h"
#include "ops/kernels/pack_attn.h"

namespace mpq::native::bert {

using kernels::PackedBF16W;
using kernels::PackedF16W;
using kernels::PackedQ8W;

namespace {
int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
}  // namespace

PackedQ8W alloc_attn_q8(int64_t N, int64_t K) {
  check(N > 0 && K > 0, "attention operand: need N > 0 and K > 0, got N={} K={}", N, K);
  PackedQ8W w;
  w.N = N, w.K = K, w.Np = round_up(N, 32), w.Kp = round_up(K, 4);
  w.w.alloc(size_t(w.Np * w.Kp));  // int8 [Np/32][Kp/4][32][4], padding stays 0
  w.scale.assign(size_t(w.Np), 0.0f);
  for (int64_t n = 0; n < N; ++n) w.scale[size_t(n)] = 1.0f;
  w.colsum.assign(size_t(w.Np), 0);
  return w;
}

PackedF16W alloc_attn_f16(int64_t N, int64_t K) {
  check(N > 0 && K > 0, "attention operand: need N > 0 and K > 0, got N={} K={}", N, K);
  PackedF16W w;
  w.N = N, w.K = K, w.Np = round_up(N, 32);
  w.w.alloc(size_t(w.Np * K) * 2);  // f16 [Np/32][K][32]
  return w;
}

PackedBF16W alloc_attn_bf16(int64_t N, int64_t K) {
  check(N > 0 && K > 0, "attention operand: need N > 0 and K > 0, got N={} K={}", N, K);
  PackedBF16W w;
  w.N = N, w.K = K, w.Np = round_up(N, 32), w.Kp = round_up(K, 2);
  w.w.alloc(size_t(w.Np * w.Kp) * 2);  // bf16 [Np/32][Kp/2][32][2]
  return w;
}

// Forwarders: the kernel entry points check the arguments and run the first usable implementation of the
// op's list.
void pack_attn_q8_rows(const uint8_t* B, int64_t ldb, PackedQ8W& w) { kernels::pack_attn_qu8_rows({B, ldb, &w}); }
void pack_attn_q8_cols(const uint8_t* B, int64_t ldb, PackedQ8W& w) { kernels::pack_attn_qu8_cols({B, ldb, &w}); }
void pack_attn_f16_rows(const float* B, int64_t ldb, PackedF16W& w) { kernels::pack_attn_f32_f16_rows({B, ldb, &w}); }
void pack_attn_f16_cols(const float* B, int64_t ldb, PackedF16W& w) { kernels::pack_attn_f32_f16_cols({B, ldb, &w}); }
void pack_attn_bf16_rows(const float* B, int64_t ldb, PackedBF16W& w) {
  kernels::pack_attn_f32_bf16_rows({B, ldb, &w});
}
void pack_attn_bf16_cols(const float* B, int64_t ldb, PackedBF16W& w) {
  kernels::pack_attn_f32_bf16_cols({B, ldb, &w});
}

void attn_q8_gemm(kernels::Q8GemmFn fn, const uint8_t* A, int64_t lda, int64_t M, int32_t za, const PackedQ8W& w,
                  int32_t zb, float* C, int64_t ldc, int32_t* row_corr) {
  const int64_t K = w.K;
  check(K <= kAttnQ8MaxK,
        "int8 attention matmul: depth {} exceeds {} (the f32 transport of the int32 sums "
        "would no longer be exact)",
        K, kAttnQ8MaxK);
  kernels::Q8GemmArgs g;
  g.M = M, g.A = A, g.lda = lda, g.a_signed = false, g.sa = 1.0f, g.za = za;
  g.w = &w, g.C = C, g.ldc = ldc;  // epilogue: f32 out, no bias: y = fma(float(acc), 1 * 1, +0) = acc exactly
  fn(g);
  for (int64_t m = 0; m < M; ++m) {
    const uint8_t* a = A + m * lda;  // [K]
    int32_t s = 0;
    for (int64_t k = 0; k < K; ++k) s += a[k];
    row_corr[m] = (128 - zb) * (s - int32_t(K) * za);
  }
}

namespace {
template <class List, class Args>
typename List::Impl first_non_onednn(const List& list, const Args& g, const void* onednn_fn) {
  for (const auto& impl : list.impls())
    if (impl.usable(g) && reinterpret_cast<const void*>(impl.fn) != onednn_fn) return impl;
  fail("{}: no non-oneDNN implementation accepts these arguments", list.op());
}
}  // namespace

kernels::Q8GemmFn attn_q8_fn(const kernels::Q8GemmArgs& g, std::string* name) {
  const auto impl = first_non_onednn(kernels::gemm_qu8_qc8w_list(), g,
                                     reinterpret_cast<const void*>(&kernels::gemm_qu8_qc8w__onednn));
  if (name) *name = impl.name;
  return impl.fn;
}
kernels::F16GemmFn attn_f16_fn(const kernels::F16GemmArgs& g, std::string* name) {
  const auto impl = first_non_onednn(kernels::gemm_f16_list(), g, nullptr);
  if (name) *name = impl.name;
  return impl.fn;
}
kernels::BF16GemmFn attn_bf16_fn(const kernels::BF16GemmArgs& g, std::string* name) {
  const auto impl =
      first_non_onednn(kernels::gemm_bf16_list(), g, reinterpret_cast<const void*>(&kernels::gemm_bf16__onednn));
  if (name) *name = impl.name;
  return impl.fn;
}

}  // namespace mpq::native::bert
