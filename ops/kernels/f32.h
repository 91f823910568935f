// Raw-pointer fp32 compute kernels behind the differentiable ops (no Tensor, no autograd here).
// Each entry point dispatches at run time over an ordered list of implementations (fastest first,
// the plain reference last); the *_ref twins are the oracles the tests compare against.
#pragma once
#include <cstdint>

namespace mpq::kernels {

// C[M,N] = beta * C + op(A)[M,K] * op(B)[K,N], row-major with leading dimensions in elements.
// op(A) = A (A is [M, lda>=K]) or A^T (A is stored [K, lda>=M]); likewise for B.
// beta is 0 or 1 (accumulate); with beta == 0, C need not be initialised.
struct GemmArgs {
  int64_t M, N, K;
  const float* A;
  int64_t lda;
  bool trans_a;
  const float* B;
  int64_t ldb;
  bool trans_b;
  float* C;
  int64_t ldc;
  float beta;
};
void gemm_f32(const GemmArgs& g);
void gemm_f32_ref(const GemmArgs& g);
// Name of the implementation gemm_f32 would run for these arguments (for tests / benchmarks).
const char* gemm_f32_impl_name(const GemmArgs& g);

// 2-D convolution, NCHW activations, OIHW weights [O, C/groups, KH, KW], asymmetric zero padding.
struct Conv2dShape {
  int64_t N, C, H, W;  // input
  int64_t O, KH, KW;   // output channels, kernel
  int64_t stride_h, stride_w;
  int64_t pad_top, pad_left, pad_bottom, pad_right;
  int64_t dil_h, dil_w;
  int64_t groups;
  int64_t OH() const { return (H + pad_top + pad_bottom - dil_h * (KH - 1) - 1) / stride_h + 1; }
  int64_t OW() const { return (W + pad_left + pad_right - dil_w * (KW - 1) - 1) / stride_w + 1; }
};
// y [N, O, OH, OW] = conv(x [N, C, H, W], w) + bias[O] (bias may be null)
void conv2d_fwd_f32(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);
void conv2d_fwd_f32_ref(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);
// gx [N, C, H, W] = d/dx of sum(gy * conv(x, w)); overwrites gx
void conv2d_bwd_data_f32(const Conv2dShape& s, const float* gy, const float* w, float* gx);
void conv2d_bwd_data_f32_ref(const Conv2dShape& s, const float* gy, const float* w, float* gx);
// gw [O, C/groups, KH, KW] (overwritten) and gbias [O] (may be null; overwritten)
void conv2d_bwd_weight_f32(const Conv2dShape& s, const float* x, const float* gy, float* gw, float* gbias);
void conv2d_bwd_weight_f32_ref(const Conv2dShape& s, const float* x, const float* gy, float* gw, float* gbias);

}  // namespace mpq::kernels
