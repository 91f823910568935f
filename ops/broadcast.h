// Element-wise iteration helpers (internal to ops/): broadcasting rows and the unary map.
// Operands are aligned to the output shape from the right (numpy rules); a broadcast dimension gets
// stride 0. The iteration walks all output rows (every dim but the last) and hands the kernel one
// inner row at a time: the output element offset, each operand's byte offset, the row length and each
// operand's element step along the row (0 when broadcast). Rows run in parallel when there are many.
#pragma once
#include <array>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace mpq::ops {

class BroadcastIter {
 public:
  static constexpr size_t kMaxOperands = 4;  // binary ops need 2; a fixed array keeps the row loop allocation-free

  BroadcastIter(const Shape& out_shape, std::vector<const Tensor*> operands) : shape_(out_shape) {
    check(operands.size() <= kMaxOperands, "broadcast: {} operands (at most {})", operands.size(), kMaxOperands);
    const size_t nd = out_shape.size();
    for (const Tensor* t : operands) {
      std::vector<int64_t> st(nd, 0);  // byte strides aligned to out_shape
      const size_t td = t->shape().size();
      if (!(td <= nd))
        fail("broadcast: operand {} has more dims than output {}", shape_str(t->shape()), shape_str(out_shape));
      for (size_t i = 0; i < td; ++i) {
        const int64_t d = t->shape()[i];
        const size_t o = nd - td + i;
        if (!(d == out_shape[o] || d == 1))
          fail("broadcast: operand {} does not broadcast to {}", shape_str(t->shape()), shape_str(out_shape));
        st[o] = (d == 1 && out_shape[o] != 1) ? 0 : t->strides()[i];
      }
      strides_.push_back(std::move(st));
    }
  }

  // fn(int64_t out_offset_elems, const int64_t* byte_offsets, int64_t n, const int64_t* elem_steps)
  template <class Fn>
  void run(Fn&& fn) const {
    const size_t nd = shape_.size();
    const size_t k = strides_.size();
    if (numel_of(shape_) == 0) return;
    if (nd == 0) {
      std::vector<int64_t> off(k, 0), step(k, 0);
      fn(0, off.data(), 1, step.data());
      return;
    }
    const int64_t inner = shape_.back();
    const int64_t rows = numel_of(shape_) / inner;
    std::array<int64_t, kMaxOperands> step{};
    for (size_t j = 0; j < k; ++j) step[j] = strides_[j][nd - 1] / 4;  // f32 element steps
#pragma omp parallel for if (rows > 64 && rows * inner > (1 << 15)) schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      std::array<int64_t, kMaxOperands> off{};
      int64_t rem = r;
      for (int64_t d = int64_t(nd) - 2; d >= 0; --d) {
        const int64_t n = shape_[size_t(d)];
        const int64_t i = rem % n;
        rem /= n;
        for (size_t j = 0; j < k; ++j) off[j] += i * strides_[j][size_t(d)];
      }
      fn(r * inner, off.data(), inner, step.data());
    }
  }

 private:
  Shape shape_;
  std::vector<std::vector<int64_t>> strides_;
};

// A possibly negative dim index of x, checked and made non-negative.
inline int64_t norm_dim(int64_t d, const Tensor& x) {
  const int64_t r = d < 0 ? d + x.dim() : d;
  if (!(r >= 0 && r < x.dim())) fail("dim {} out of range for shape {}", d, shape_str(x.shape()));
  return r;
}

// Element-wise map of an f32 tensor (any strides) into a fresh contiguous tensor: the forward of every
// unary op (exp, log, activations, ...).
template <class F>
Tensor map_unary(const Tensor& a, F f) {
  check(a.dtype() == DType::f32, "element-wise op on a {} tensor (f32 expected)", dtype_name(a.dtype()));
  const Tensor c = a.contiguous();
  Tensor out = Tensor::empty(a.shape());  // [a.shape]
  const float* pa = c.data<float>();
  float* po = out.data<float>();
  const int64_t n = a.numel();
#pragma omp parallel for if (n > (1 << 16)) schedule(static)
  for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i]);
  return out;
}

}  // namespace mpq::ops
