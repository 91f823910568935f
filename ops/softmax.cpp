// softmax / log_softmax along one dim, the cross-entropy losses, and gather_rows; forward + backward.
// The kernels view the input as [outer, D, inner] (D = the softmax dim), subtract the max for stability.
#include <cmath>

#include "core/autograd/node.h"
#include "core/error.h"
#include "ops/broadcast.h"
#include "ops/ops.h"

namespace mpq::ops {

using autograd::Node;
using autograd::record;

namespace {

Tensor softmax_forward(const Tensor& x, int64_t dim, bool log_space) {
  check(x.dtype() == DType::f32, "softmax of a {} tensor (f32 expected)", dtype_name(x.dtype()));
  const Tensor c = x.contiguous();
  Tensor out = Tensor::empty(x.shape());  // [x.shape]
  int64_t outer = 1, inner = 1;
  const int64_t D = x.size(dim);
  for (int64_t k = 0; k < dim; ++k) outer *= x.size(k);
  for (int64_t k = dim + 1; k < x.dim(); ++k) inner *= x.size(k);
  const float* px = c.data<float>();
  float* po = out.data<float>();
#pragma omp parallel for collapse(2) if (outer * inner > 256) schedule(static)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const float* s = px + o * D * inner + i;
      float* d = po + o * D * inner + i;
      float mx = -INFINITY;
      for (int64_t k = 0; k < D; ++k) mx = std::max(mx, s[k * inner]);
      double z = 0;
      for (int64_t k = 0; k < D; ++k) z += std::exp(double(s[k * inner] - mx));
      const float lz = float(std::log(z));
      for (int64_t k = 0; k < D; ++k) {
        const float l = s[k * inner] - mx - lz;
        d[k * inner] = log_space ? l : std::exp(l);
      }
    }
  return out;
}

struct SoftmaxBackward : Node {
  Tensor y;  // saved output, detached
  int64_t dim;
  const char* name() const override { return "SoftmaxBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    // dx = y * (g - sum(g * y, dim))
    const Tensor yy = attach_self(y);
    return {mul(yy, sub(g, sum(mul(g, yy), {dim}, true)))};
  }
  void release() override { y = Tensor(); }
};

struct LogSoftmaxBackward : Node {
  Tensor y;
  int64_t dim;
  const char* name() const override { return "LogSoftmaxBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    // dx = g - softmax(x) * sum(g, dim), with softmax(x) = exp(y)
    return {sub(g, mul(exp(attach_self(y)), sum(g, {dim}, true)))};
  }
  void release() override { y = Tensor(); }
};

// Adjoint of gather_rows: an [N, C] zero tensor with g[i] at (i, idx[i]).
Tensor scatter_rows(const Tensor& g, const std::vector<int32_t>& idx, int64_t C);

struct GatherRowsBackward : Node {
  std::vector<int32_t> idx;
  int64_t C;
  const char* name() const override { return "GatherRowsBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {scatter_rows(g, idx, C)}; }
};

struct ScatterRowsBackward : Node {
  std::vector<int32_t> idx;
  const char* name() const override { return "ScatterRowsBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {gather_rows(g, idx)}; }
};

Tensor scatter_rows(const Tensor& g, const std::vector<int32_t>& idx, int64_t C) {
  const int64_t N = int64_t(idx.size());
  Tensor out = Tensor::zeros({N, C});  // [N, C]
  const Tensor gc = g.contiguous();
  for (int64_t i = 0; i < N; ++i) out.data<float>()[i * C + idx[size_t(i)]] = gc.data<float>()[i];
  if (!autograd::needs_grad({g})) return out;
  auto n = std::make_shared<ScatterRowsBackward>();
  n->idx = idx;
  return record(out, n, {g});
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
  const int64_t d = norm_dim(dim, x);
  Tensor out = softmax_forward(x, d, false);
  if (!autograd::needs_grad({x})) return out;
  auto n = std::make_shared<SoftmaxBackward>();
  n->y = out.detach();
  n->dim = d;
  return record(out, n, {x});
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  const int64_t d = norm_dim(dim, x);
  Tensor out = softmax_forward(x, d, true);
  if (!autograd::needs_grad({x})) return out;
  auto n = std::make_shared<LogSoftmaxBackward>();
  n->y = out.detach();
  n->dim = d;
  return record(out, n, {x});
}

Tensor gather_rows(const Tensor& x, const std::vector<int32_t>& idx) {
  if (!(x.dim() == 2 && x.size(0) == int64_t(idx.size())))
    fail("gather_rows: {} indices for a tensor of shape {}", idx.size(), shape_str(x.shape()));
  const int64_t N = x.size(0), C = x.size(1);
  Tensor out = Tensor::zeros({N});  // [N]
  for (int64_t i = 0; i < N; ++i) {
    const int32_t k = idx[size_t(i)];
    check(k >= 0 && k < C, "gather_rows: index {} at row {} out of range [0, {})", k, i, C);
    out.data<float>()[i] = x.at({i, k});
  }
  if (!autograd::needs_grad({x})) return out;
  auto n = std::make_shared<GatherRowsBackward>();
  n->idx = idx;
  n->C = C;
  return record(out, n, {x});
}

Tensor cross_entropy(const Tensor& logits, const std::vector<int32_t>& labels) {
  if (!(logits.dim() == 2)) fail("cross_entropy: logits must be [N, C], got {}", shape_str(logits.shape()));
  if (!(logits.size(0) == int64_t(labels.size())))
    fail("cross_entropy: {} labels for logits {}", labels.size(), shape_str(logits.shape()));
  return neg(mean(gather_rows(log_softmax(logits, 1), labels)));
}

Tensor soft_cross_entropy(const Tensor& logits, const Tensor& target_probs) {
  if (!(logits.dim() == 2 && target_probs.shape() == logits.shape()))
    fail("soft_cross_entropy: logits {} and target {} must both be [N, C]", shape_str(logits.shape()),
         shape_str(target_probs.shape()));
  const Tensor t = target_probs.detach();
  return mul_scalar(sum(mul(log_softmax(logits, 1), t)), -1.0f / float(logits.size(0)));
}

}  // namespace mpq::ops
