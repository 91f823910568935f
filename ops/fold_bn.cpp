// Eval-mode batch-norm folding into the preceding convolution (see ops/fold_bn.h).
#include "ops/fold_bn.h"

#include <cmath>
#include <vector>

#include "core/error.h"

namespace mpq::ops {

FoldedConv fold_bn(const Tensor& w, const Tensor& b, const Tensor& gamma, const Tensor& beta,
                   const Tensor& running_mean, const Tensor& running_var, float eps) {
  if (!(w.defined() && w.dim() == 4))
    fail("fold_bn: conv weight must be 4-D [O, C/groups, KH, KW], got {}",
         w.defined() ? shape_str(w.shape()) : std::string("undefined"));
  const int64_t O = w.size(0);
  const auto check_vec = [&](const char* what, const Tensor& t, bool required) {
    if (!t.defined()) {
      if (!(!required)) fail("fold_bn: {} is required (weight {})", what, shape_str(w.shape()));
      return;
    }
    if (!(t.dim() == 1 && t.size(0) == O))
      fail("fold_bn: {} {} does not match weight {} ({} output channels)", what, shape_str(t.shape()),
           shape_str(w.shape()), O);
  };
  check_vec("bias", b, false);
  check_vec("gamma", gamma, false);
  check_vec("beta", beta, false);
  check_vec("running_mean", running_mean, true);
  check_vec("running_var", running_var, true);
  const auto vec = [&](const Tensor& t, float fill) {
    return t.defined() ? t.contiguous().to_vector() : std::vector<float>(size_t(O), fill);
  };
  const std::vector<float> bv = vec(b, 0.0f), g = vec(gamma, 1.0f), be = vec(beta, 0.0f);  // [O]
  const std::vector<float> m = vec(running_mean, 0.0f), v = vec(running_var, 1.0f);        // [O]

  FoldedConv out;
  out.weight = w.contiguous().clone();  // [O, C/groups, KH, KW]
  out.bias = Tensor::empty({O});        // [O]
  float* pw = out.weight.data<float>();
  float* pb = out.bias.data<float>();
  const int64_t per_out = O > 0 ? w.numel() / O : 0;
  for (int64_t o = 0; o < O; ++o) {
    const size_t c = size_t(o);
    const double s = double(g[c]) / std::sqrt(double(v[c]) + double(eps));
    for (int64_t i = 0; i < per_out; ++i) pw[o * per_out + i] = float(double(pw[o * per_out + i]) * s);
    pb[o] = float((double(bv[c]) - double(m[c])) * s + double(be[c]));
  }
  return out;
}

}  // namespace mpq::ops
