// matmul (batched, broadcasting leading dims) and linear, forward and backward.
// Operands may be transposed views: a matrix whose last dim is contiguous is passed as is, one whose
// second-to-last dim is contiguous is passed with the GEMM's transpose flag (no copy); anything else
// is copied to contiguous first.
#include "core/autograd/node.h"
#include "core/error.h"
#include "ops/kernels/f32.h"
#include "ops/ops.h"

namespace mpq::ops {

using autograd::Node;
using autograd::record;

namespace {

struct MatView {
  Tensor t;  // possibly a copy of the operand
  bool trans = false;
  int64_t ld = 0;  // elements
};

// Makes the last two dims of `a` addressable by GEMM: row-major (ld = row stride) or transposed.
MatView as_gemm_operand(const Tensor& a) {
  const int64_t nd = a.dim();
  const int64_t r = a.shape()[size_t(nd - 2)], c = a.shape()[size_t(nd - 1)];
  const int64_t sr = a.strides()[size_t(nd - 2)], sc = a.strides()[size_t(nd - 1)];
  if ((sc == 4 || c == 1) && sr >= 4 * c && sr % 4 == 0) return {a, false, std::max<int64_t>(sr / 4, c)};
  if ((sr == 4 || r == 1) && sc >= 4 * r && sc % 4 == 0) return {a, true, std::max<int64_t>(sc / 4, r)};
  Tensor cc = a.contiguous();
  return {cc, false, c};
}

struct MatmulBackward : Node {
  Tensor a, b;
  const char* name() const override { return "MatmulBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor ga, gb;
    if (needs_input_grad(0)) ga = sum_to(matmul(g, transpose(b, -1, -2)), a.shape());
    if (needs_input_grad(1)) {
      if (b.dim() == 2 && a.dim() > 2) {
        // shared weight: fold the batch into rows, one GEMM instead of a batched one plus a reduction
        const int64_t K = a.size(-1), N = g.size(-1);
        gb = matmul(transpose(reshape(a, {-1, K}), 0, 1), reshape(g, {-1, N}));
      } else {
        gb = sum_to(matmul(transpose(a, -1, -2), g), b.shape());
      }
    }
    return {ga, gb};
  }
  void release() override { a = b = Tensor(); }
};

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check(a.dtype() == DType::f32 && b.dtype() == DType::f32, "matmul: f32 operands expected, got {} and {}",
        dtype_name(a.dtype()), dtype_name(b.dtype()));
  if (!(a.dim() >= 2 && b.dim() >= 2))
    fail("matmul: operands must be at least 2-D, got {} and {}", shape_str(a.shape()), shape_str(b.shape()));
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  if (!(b.size(-2) == K)) fail("matmul: inner dimensions differ: {} x {}", shape_str(a.shape()), shape_str(b.shape()));
  Shape batch_a(a.shape().begin(), a.shape().end() - 2), batch_b(b.shape().begin(), b.shape().end() - 2);
  const Shape batch = broadcast_shape(batch_a, batch_b);
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = Tensor::empty(out_shape);  // [..., M, N]

  if (b.dim() == 2 && a.dim() > 2 && a.is_contiguous()) {
    // shared 2-D right operand: one GEMM over all rows of a, viewed as [B*M, K]
    const MatView vb = as_gemm_operand(b);
    kernels::gemm_f32({a.numel() / K, N, K, a.data<float>(), K, false, vb.t.data<float>(), vb.ld, vb.trans,
                       out.data<float>(), N, 0.0f});
  } else {
    const MatView va = as_gemm_operand(a), vb = as_gemm_operand(b);
    const int64_t nb = numel_of(batch);
    const size_t nd = batch.size();
    for (int64_t bi = 0; bi < nb; ++bi) {
      // byte offsets of this batch element in each operand (broadcast dims use index 0)
      int64_t oa = 0, ob = 0, rem = bi;
      for (int64_t d = int64_t(nd) - 1; d >= 0; --d) {
        const int64_t i = rem % batch[size_t(d)];
        rem /= batch[size_t(d)];
        const int64_t da = d - int64_t(nd - batch_a.size()), db = d - int64_t(nd - batch_b.size());
        if (da >= 0 && batch_a[size_t(da)] != 1) oa += i * va.t.strides()[size_t(da)];
        if (db >= 0 && batch_b[size_t(db)] != 1) ob += i * vb.t.strides()[size_t(db)];
      }
      kernels::gemm_f32({M, N, K, reinterpret_cast<const float*>(va.t.raw() + oa), va.ld, va.trans,
                         reinterpret_cast<const float*>(vb.t.raw() + ob), vb.ld, vb.trans,
                         out.data<float>() + bi * M * N, N, 0.0f});
    }
  }
  if (!autograd::needs_grad({a, b})) return out;
  auto n = std::make_shared<MatmulBackward>();
  n->a = a;
  n->b = b;
  return record(out, n, {a, b});
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  if (!(w.dim() == 2)) fail("linear: weight must be [out, in], got {}", shape_str(w.shape()));
  if (!(x.size(-1) == w.size(1)))
    fail("linear: input {} does not match weight {} (in = {})", shape_str(x.shape()), shape_str(w.shape()), w.size(1));
  if (!(!b.defined() || b.shape() == Shape{w.size(0)}))
    fail("linear: bias {} does not match weight {}", b.defined() ? shape_str(b.shape()) : "", shape_str(w.shape()));
  Tensor x2 = x.dim() == 1 ? reshape(x, {1, x.size(0)}) : x;
  Tensor y = matmul(x2, transpose(w, 0, 1));  // [..., out]
  if (b.defined()) y = add(y, b);
  return x.dim() == 1 ? reshape(y, {w.size(0)}) : y;
}

}  // namespace mpq::ops
