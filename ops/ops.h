// Differentiable fp32 ops on Tensors (NCHW images, [out, in] linear weights; see core/tensor.h).
//
// Every op: checks shapes (throws mpq::Error naming both shapes), computes the forward with the fastest
// registered kernel, and records an autograd node whose backward is written with these same ops, so
// gradients are themselves differentiable (double backward -> exact Hessian-vector products).
// Forward and backward of each op sit side by side in its .cpp under ops/.
// Inputs may be non-contiguous views; outputs are fresh contiguous f32 tensors unless stated.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace mpq::ops {

// ---- element-wise, numpy broadcasting (ops/elementwise.cpp) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor neg(const Tensor& a);
Tensor add_scalar(const Tensor& a, float s);
Tensor mul_scalar(const Tensor& a, float s);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor square(const Tensor& a);
// Multiplies by a constant (non-differentiated) mask of the same shape; used by relu/dropout backward.
Tensor mul_const(const Tensor& a, const Tensor& mask);

// ---- reductions and broadcasting (ops/reduce.cpp) ----
Tensor sum(const Tensor& a);  // -> scalar []
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim);
Tensor mean(const Tensor& a);
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim);
Tensor sum_to(const Tensor& a, const Shape& shape);     // reverses broadcasting
Tensor expand(const Tensor& a, const Shape& shape);     // broadcast (copying), inverse of sum_to
Shape broadcast_shape(const Shape& a, const Shape& b);  // throws on mismatch

// ---- shape (ops/shape.cpp) ----
Tensor reshape(const Tensor& a, const Shape& shape);                // view when contiguous, else copy; -1 allowed
Tensor permute(const Tensor& a, const std::vector<int64_t>& perm);  // contiguous result
Tensor transpose(const Tensor& a, int64_t d0, int64_t d1);
Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end);  // contiguous result
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
Tensor flatten(const Tensor& a, int64_t start_dim = 1);

// ---- linear algebra (ops/matmul.cpp) ----
// a [..., M, K] x b [..., K, N] -> [..., M, N]; leading dims broadcast; 2-D b is shared by all batches.
Tensor matmul(const Tensor& a, const Tensor& b);
// x [..., in], w [out, in], b [out] or undefined -> [..., out]
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);

// ---- activations (ops/activation.cpp) ----
Tensor relu(const Tensor& x);
Tensor relu6(const Tensor& x);
Tensor gelu(const Tensor& x);  // erf form: x/2 (1 + erf(x / sqrt 2))
Tensor tanh(const Tensor& x);

// ---- convolution and pooling (ops/conv.cpp, ops/pool.cpp) ----
struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;  // TF SAME may be asymmetric
  int64_t dil_h = 1, dil_w = 1;
  int64_t groups = 1;
  static Conv2dParams symmetric(int64_t stride, int64_t pad, int64_t dilation = 1, int64_t groups = 1) {
    return {stride, stride, pad, pad, pad, pad, dilation, dilation, groups};
  }
};
// x [N, C, H, W], w [O, C/groups, KH, KW], b [O] or undefined -> [N, O, OH, OW]
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p);
// Gradient helpers of conv2d, themselves differentiable (the conv2d backward is written with them).
Tensor conv2d_grad_input(const Tensor& gy, const Tensor& w, const Shape& x_shape, const Conv2dParams& p);
Tensor conv2d_grad_weight(const Tensor& x, const Tensor& gy, const Shape& w_shape, const Conv2dParams& p);

struct Pool2dParams {
  int64_t kernel_h = 2, kernel_w = 2, stride_h = 2, stride_w = 2;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  // avg pool: divide by the number of in-bounds elements (TF SAME, Keras) instead of the full window
  bool count_include_pad = false;
};
Tensor max_pool2d(const Tensor& x, const Pool2dParams& p);
Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p);
Tensor global_avg_pool(const Tensor& x);  // [N, C, H, W] -> [N, C]

// ---- normalisation (ops/norm.cpp) ----
// Training mode uses batch statistics (biased variance) and updates running stats with `momentum`
// (running = (1 - momentum) * running + momentum * batch; unbiased variance for running_var, as PyTorch).
// Eval mode uses the running stats. gamma/beta may be undefined (identity affine).
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                  bool training, float momentum, float eps);
// Normalises over the last dim: x [..., D], gamma/beta [D]
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);

// ---- softmax and losses (ops/softmax.cpp) ----
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);
// logits [N, C], labels: N class indices -> mean negative log-likelihood (scalar)
Tensor cross_entropy(const Tensor& logits, const std::vector<int32_t>& labels);
// logits [N, C] against a target distribution probs [N, C] (constant): mean of -sum p log softmax
Tensor soft_cross_entropy(const Tensor& logits, const Tensor& target_probs);
// Picks x[i, idx[i]] along dim 1 of a 2-D tensor -> [N]; differentiable w.r.t. x.
Tensor gather_rows(const Tensor& x, const std::vector<int32_t>& idx);

// ---- embedding and dropout (ops/embedding.cpp) ----
// weight [V, D], ids [.. ] -> [.., D]; ids out of range throw naming the id and V.
Tensor embedding(const Tensor& weight, const std::vector<int32_t>& ids, const Shape& ids_shape);
// Inverted dropout: scales kept units by 1/(1-p); identity when !training or p == 0. `seed` makes it
// reproducible; the mask is a constant for autograd.
Tensor dropout(const Tensor& x, float p, bool training, uint64_t seed);

}  // namespace mpq::ops
