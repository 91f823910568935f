// Reductions (sum, mean), broadcasting (expand) and its adjoint (sum_to), forward and backward.
#include <algorithm>
#include <numeric>

#include "core/autograd/node.h"
#include "core/error.h"
#include "ops/broadcast.h"
#include "ops/ops.h"

namespace mpq::ops {

using autograd::Node;
using autograd::record;

Shape broadcast_shape(const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (!(da == db || da == 1 || db == 1)) fail("shapes {} and {} do not broadcast", shape_str(a), shape_str(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

std::vector<int64_t> normalize_dims(const std::vector<int64_t>& dims, int64_t nd, const Shape& shape) {
  std::vector<int64_t> r;
  for (int64_t d : dims) {
    const int64_t dd = d < 0 ? d + nd : d;
    if (!(dd >= 0 && dd < nd)) fail("reduction dim {} out of range for shape {}", d, shape_str(shape));
    r.push_back(dd);
  }
  std::sort(r.begin(), r.end());
  r.erase(std::unique(r.begin(), r.end()), r.end());
  return r;
}

// Sum over `dims` (sorted, unique) -> keepdim shape. Moves the reduced dims innermost (a view), makes
// that contiguous (a copy only when needed), then each output is the sum of one contiguous run,
// accumulated in double so long reductions (batch-norm statistics) keep f32 accuracy.
Tensor sum_forward(const Tensor& a, const std::vector<int64_t>& dims) {
  const int64_t nd = a.dim();
  std::vector<int64_t> perm;
  Shape keep = a.shape();
  int64_t inner = 1;
  for (int64_t d = 0; d < nd; ++d)
    if (!std::binary_search(dims.begin(), dims.end(), d)) perm.push_back(d);
  for (int64_t d : dims) {
    perm.push_back(d);
    inner *= a.shape()[size_t(d)];
    keep[size_t(d)] = 1;
  }
  const Tensor p = a.permute_view(perm).contiguous();
  Tensor out = Tensor::empty(keep);  // [keep]
  const int64_t outer = out.numel();
  const float* src = p.data<float>();
  float* dst = out.data<float>();
#pragma omp parallel for if (outer * inner > (1 << 16)) schedule(static)
  for (int64_t o = 0; o < outer; ++o) {
    const float* s = src + o * inner;
    double acc = 0;
    for (int64_t i = 0; i < inner; ++i) acc += s[i];
    dst[o] = float(acc);
  }
  return out;
}

struct SumBackward : Node {
  Shape in_shape, keep_shape;
  const char* name() const override { return "SumBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {expand(reshape(g, keep_shape), in_shape)}; }
};

struct ExpandBackward : Node {
  Shape in_shape;
  const char* name() const override { return "ExpandBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {sum_to(g, in_shape)}; }
};

}  // namespace

Tensor sum(const Tensor& a, const std::vector<int64_t>& dims_in, bool keepdim) {
  check(a.dtype() == DType::f32, "sum of a {} tensor (f32 expected)", dtype_name(a.dtype()));
  const auto dims = normalize_dims(dims_in, a.dim(), a.shape());
  Tensor out = sum_forward(a, dims);
  const Shape keep = out.shape();
  if (!keepdim) {
    Shape s;
    for (int64_t d = 0; d < a.dim(); ++d)
      if (!std::binary_search(dims.begin(), dims.end(), d)) s.push_back(a.shape()[size_t(d)]);
    out = out.reshape_view(s);
  }
  if (!autograd::needs_grad({a})) return out;
  auto n = std::make_shared<SumBackward>();
  n->in_shape = a.shape();
  n->keep_shape = keep;
  return record(out, n, {a});
}

Tensor sum(const Tensor& a) {
  std::vector<int64_t> all(static_cast<size_t>(a.dim()));
  std::iota(all.begin(), all.end(), 0);
  return sum(a, all, false);
}

Tensor mean(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  int64_t count = 1;
  for (int64_t d : normalize_dims(dims, a.dim(), a.shape())) count *= a.shape()[size_t(d)];
  return mul_scalar(sum(a, dims, keepdim), 1.0f / float(std::max<int64_t>(count, 1)));
}

Tensor mean(const Tensor& a) { return mul_scalar(sum(a), 1.0f / float(std::max<int64_t>(a.numel(), 1))); }

Tensor expand(const Tensor& a, const Shape& shape) {
  if (!(broadcast_shape(a.shape(), shape) == shape))
    fail("expand: {} cannot be broadcast to {}", shape_str(a.shape()), shape_str(shape));
  Tensor out = Tensor::empty(shape);  // [shape]
  float* po = out.data<float>();
  BroadcastIter(shape, {&a}).run([&](int64_t out_off, const int64_t* off, int64_t n, const int64_t* step) {
    const float* pa = reinterpret_cast<const float*>(a.raw() + off[0]);
    float* o = po + out_off;
    for (int64_t i = 0; i < n; ++i) o[i] = pa[i * step[0]];
  });
  if (!autograd::needs_grad({a})) return out;
  auto n = std::make_shared<ExpandBackward>();
  n->in_shape = a.shape();
  return record(out, n, {a});
}

Tensor sum_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  if (!(broadcast_shape(shape, a.shape()) == a.shape()))
    fail("sum_to: {} is not a broadcast of {}", shape_str(a.shape()), shape_str(shape));
  const int64_t lead = a.dim() - int64_t(shape.size());
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < a.dim(); ++d)
    if (d < lead || (shape[size_t(d - lead)] == 1 && a.shape()[size_t(d)] != 1)) dims.push_back(d);
  return reshape(sum(a, dims, true), shape);
}

}  // namespace mpq::ops
