// Folding an eval-mode batch norm into the convolution before it (inference-time utility, no autograd).
//
//   bn(conv(x, w) + b) = conv(x, w') + b'   with, per output channel o,
//   s[o] = gamma[o] / sqrt(var[o] + eps),  w'[o] = w[o] * s[o],  b'[o] = (b[o] - mean[o]) * s[o] + beta[o].
#pragma once
#include "core/tensor.h"

namespace mpq::ops {

struct FoldedConv {
  Tensor weight;  // [O, C/groups, KH, KW]
  Tensor bias;    // [O]
};

// w [O, C/groups, KH, KW]; b [O] or undefined (zero); gamma/beta [O] or undefined (1 / 0); mean/var [O].
// Returns fresh tensors without autograd history; the inputs are not modified.
FoldedConv fold_bn(const Tensor& w, const Tensor& b, const Tensor& gamma, const Tensor& beta,
                   const Tensor& running_mean, const Tensor& running_var, float eps);

}  // namespace mpq::ops
