// Shape ops: reshape, permute/transpose, slice (and its adjoint, slice_pad), concat. Forward and backward.
#include <numeric>

#include "core/autograd/node.h"
#include "core/error.h"
#include "ops/broadcast.h"
#include "ops/ops.h"

namespace mpq::ops {

using autograd::Node;
using autograd::record;

namespace {

struct ReshapeBackward : Node {
  Shape in_shape;
  const char* name() const override { return "ReshapeBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {reshape(g, in_shape)}; }
};

struct PermuteBackward : Node {
  std::vector<int64_t> inv;
  const char* name() const override { return "PermuteBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {permute(g, inv)}; }
};

struct TransposeBackward : Node {
  int64_t d0, d1;
  const char* name() const override { return "TransposeBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {transpose(g, d0, d1)}; }
};

// Adjoint of slice: a zero tensor of the input's shape with g written at [start, start + len) of dim.
Tensor slice_pad(const Tensor& g, const Shape& in_shape, int64_t dim, int64_t start);

struct SliceBackward : Node {
  Shape in_shape;
  int64_t dim, start;
  const char* name() const override { return "SliceBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {slice_pad(g, in_shape, dim, start)}; }
};

struct SlicePadBackward : Node {
  int64_t dim, start, len;
  const char* name() const override { return "SlicePadBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {slice(g, dim, start, start + len)}; }
};

Tensor slice_pad(const Tensor& g, const Shape& in_shape, int64_t dim, int64_t start) {
  Tensor out = Tensor::zeros(in_shape);  // [in_shape]
  out.narrow(dim, start, g.size(dim)).copy_from(g);
  if (!autograd::needs_grad({g})) return out;
  auto n = std::make_shared<SlicePadBackward>();
  n->dim = dim;
  n->start = start;
  n->len = g.size(dim);
  return record(out, n, {g});
}

struct ConcatBackward : Node {
  int64_t dim;
  std::vector<int64_t> sizes;
  const char* name() const override { return "ConcatBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    std::vector<Tensor> r;
    int64_t at = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      r.push_back(needs_input_grad(i) ? slice(g, dim, at, at + sizes[i]) : Tensor());
      at += sizes[i];
    }
    return r;
  }
};

}  // namespace

Tensor reshape(const Tensor& a, const Shape& shape) {
  Tensor out = a.contiguous().reshape_view(shape);
  if (!autograd::needs_grad({a})) return out;
  auto n = std::make_shared<ReshapeBackward>();
  n->in_shape = a.shape();
  return record(out, n, {a});
}

Tensor flatten(const Tensor& a, int64_t start_dim) {
  const int64_t s = norm_dim(start_dim, a);
  Shape ns(a.shape().begin(), a.shape().begin() + s);
  ns.push_back(-1);
  return reshape(a, ns);
}

Tensor permute(const Tensor& a, const std::vector<int64_t>& perm) {
  Tensor out = a.permute_view(perm).clone();
  if (!autograd::needs_grad({a})) return out;
  auto n = std::make_shared<PermuteBackward>();
  n->inv.resize(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) n->inv[size_t(norm_dim(perm[i], a))] = int64_t(i);
  return record(out, n, {a});
}

Tensor transpose(const Tensor& a, int64_t d0, int64_t d1) {
  // A view: matmul reads transposed operands in place (trans flags), other ops copy when they must.
  Tensor out = a.transpose_view(d0, d1);
  if (!autograd::needs_grad({a})) return out;
  auto n = std::make_shared<TransposeBackward>();
  n->d0 = d0;
  n->d1 = d1;
  return record(out, n, {a});
}

Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end) {
  const int64_t d = norm_dim(dim, a);
  Tensor out = a.slice(d, start, end).clone();
  if (!autograd::needs_grad({a})) return out;
  auto n = std::make_shared<SliceBackward>();
  n->in_shape = a.shape();
  n->dim = d;
  n->start = start;
  return record(out, n, {a});
}

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  check(!xs.empty(), "concat of an empty list");
  const int64_t d = norm_dim(dim, xs[0]);
  Shape out_shape = xs[0].shape();
  out_shape[size_t(d)] = 0;
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs) {
    if (!(x.dim() == xs[0].dim()))
      fail("concat: shapes {} and {} differ in rank", shape_str(xs[0].shape()), shape_str(x.shape()));
    for (int64_t k = 0; k < x.dim(); ++k)
      if (!(k == d || x.shape()[size_t(k)] == xs[0].shape()[size_t(k)]))
        fail("concat along {}: shapes {} and {} differ", d, shape_str(xs[0].shape()), shape_str(x.shape()));
    sizes.push_back(x.size(d));
    out_shape[size_t(d)] += x.size(d);
  }
  Tensor out = Tensor::zeros(out_shape);  // [out_shape]
  int64_t at = 0;
  for (const Tensor& x : xs) {
    out.narrow(d, at, x.size(d)).copy_from(x);
    at += x.size(d);
  }
  if (!autograd::needs_grad(xs)) return out;
  auto n = std::make_shared<ConcatBackward>();
  n->dim = d;
  n->sizes = sizes;
  return record(out, n, xs);
}

}  // namespace mpq::ops
