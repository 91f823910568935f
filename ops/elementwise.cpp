// Element-wise ops with numpy broadcasting: forward kernels and their backward rules, side by side.
// Backward rules use the same differentiable ops, so double backward (HVP) works through them.
#include <cmath>

#include "core/autograd/node.h"
#include "core/error.h"
#include "ops/broadcast.h"
#include "ops/ops.h"

namespace mpq::ops {

using autograd::Node;
using autograd::record;

namespace {

struct AddF {
  float operator()(float a, float b) const { return a + b; }
};
struct SubF {
  float operator()(float a, float b) const { return a - b; }
};
struct MulF {
  float operator()(float a, float b) const { return a * b; }
};
struct DivF {
  float operator()(float a, float b) const { return a / b; }
};

template <class F>
Tensor binary_forward(const Tensor& a, const Tensor& b, const char* name) {
  check(a.dtype() == DType::f32 && b.dtype() == DType::f32, "{}: f32 operands expected, got {} and {}", name,
        dtype_name(a.dtype()), dtype_name(b.dtype()));
  const Shape out_shape = broadcast_shape(a.shape(), b.shape());
  Tensor out = Tensor::empty(out_shape);  // [out_shape]
  BroadcastIter it(out_shape, {&a, &b});
  float* po = out.data<float>();
  const F f;
  it.run([&](int64_t out_off, const int64_t* off, int64_t n, const int64_t* step) {
    const float* pa = reinterpret_cast<const float*>(a.raw() + off[0]);
    const float* pb = reinterpret_cast<const float*>(b.raw() + off[1]);
    const int64_t sa = step[0], sb = step[1];
    float* o = po + out_off;
    if (sa == 1 && sb == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = f(pa[i], pb[i]);
    } else if (sa == 1 && sb == 0) {
      const float vb = pb[0];
      for (int64_t i = 0; i < n; ++i) o[i] = f(pa[i], vb);
    } else if (sa == 0 && sb == 1) {
      const float va = pa[0];
      for (int64_t i = 0; i < n; ++i) o[i] = f(va, pb[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i] = f(pa[i * sa], pb[i * sb]);
    }
  });
  return out;
}

struct AddBackward : Node {
  Shape sa, sb;
  const char* name() const override { return "AddBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {sum_to(g, sa), sum_to(g, sb)}; }
};
struct SubBackward : Node {
  Shape sa, sb;
  const char* name() const override { return "SubBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    return {sum_to(g, sa), needs_input_grad(1) ? sum_to(neg(g), sb) : Tensor()};
  }
};
struct MulBackward : Node {
  Tensor a, b;  // saved inputs
  const char* name() const override { return "MulBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    return {needs_input_grad(0) ? sum_to(mul(g, b), a.shape()) : Tensor(),
            needs_input_grad(1) ? sum_to(mul(g, a), b.shape()) : Tensor()};
  }
  void release() override { a = b = Tensor(); }
};
struct DivBackward : Node {
  Tensor a, b;
  const char* name() const override { return "DivBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    // d(a/b)/da = 1/b ; d(a/b)/db = -a/b^2
    return {needs_input_grad(0) ? sum_to(div(g, b), a.shape()) : Tensor(),
            needs_input_grad(1) ? sum_to(neg(div(mul(g, a), square(b))), b.shape()) : Tensor()};
  }
  void release() override { a = b = Tensor(); }
};

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward<AddF>(a, b, "add");
  if (!autograd::needs_grad({a, b})) return out;
  auto n = std::make_shared<AddBackward>();
  n->sa = a.shape();
  n->sb = b.shape();
  return record(out, n, {a, b});
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward<SubF>(a, b, "sub");
  if (!autograd::needs_grad({a, b})) return out;
  auto n = std::make_shared<SubBackward>();
  n->sa = a.shape();
  n->sb = b.shape();
  return record(out, n, {a, b});
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward<MulF>(a, b, "mul");
  if (!autograd::needs_grad({a, b})) return out;
  auto n = std::make_shared<MulBackward>();
  n->a = a;
  n->b = b;
  return record(out, n, {a, b});
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward<DivF>(a, b, "div");
  if (!autograd::needs_grad({a, b})) return out;
  auto n = std::make_shared<DivBackward>();
  n->a = a;
  n->b = b;
  return record(out, n, {a, b});
}

// ---- scalar and unary ops ----
namespace {
struct ScaleBackward : Node {
  float s;
  const char* name() const override { return "ScaleBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {mul_scalar(g, s)}; }
};
struct ExpBackward : Node {
  Tensor y;  // saved output, detached (re-attached in backward)
  const char* name() const override { return "ExpBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {mul(g, attach_self(y))}; }
  void release() override { y = Tensor(); }
};
struct LogBackward : Node {
  Tensor a;
  const char* name() const override { return "LogBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {div(g, a)}; }
  void release() override { a = Tensor(); }
};
struct SqrtBackward : Node {
  Tensor y;
  const char* name() const override { return "SqrtBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {div(g, mul_scalar(attach_self(y), 2.0f))}; }
  void release() override { y = Tensor(); }
};
struct SquareBackward : Node {
  Tensor a;
  const char* name() const override { return "SquareBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {mul(g, mul_scalar(a, 2.0f))}; }
  void release() override { a = Tensor(); }
};
struct MulConstBackward : Node {
  Tensor mask;  // constant
  const char* name() const override { return "MulConstBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {mul_const(g, mask)}; }
  void release() override { mask = Tensor(); }
};
}  // namespace

Tensor neg(const Tensor& a) { return mul_scalar(a, -1.0f); }

Tensor add_scalar(const Tensor& a, float s) {
  Tensor out = map_unary(a, [s](float v) { return v + s; });
  if (!autograd::needs_grad({a})) return out;
  auto n = std::make_shared<ScaleBackward>();
  n->s = 1.0f;
  return record(out, n, {a});
}

Tensor mul_scalar(const Tensor& a, float s) {
  Tensor out = map_unary(a, [s](float v) { return v * s; });
  if (!autograd::needs_grad({a})) return out;
  auto n = std::make_shared<ScaleBackward>();
  n->s = s;
  return record(out, n, {a});
}

Tensor exp(const Tensor& a) {
  Tensor out = map_unary(a, [](float v) { return std::exp(v); });
  if (!autograd::needs_grad({a})) return out;
  auto n = std::make_shared<ExpBackward>();
  n->y = out.detach();
  return record(out, n, {a});
}

Tensor log(const Tensor& a) {
  Tensor out = map_unary(a, [](float v) { return std::log(v); });
  if (!autograd::needs_grad({a})) return out;
  auto n = std::make_shared<LogBackward>();
  n->a = a;
  return record(out, n, {a});
}

Tensor sqrt(const Tensor& a) {
  Tensor out = map_unary(a, [](float v) { return std::sqrt(v); });
  if (!autograd::needs_grad({a})) return out;
  auto n = std::make_shared<SqrtBackward>();
  n->y = out.detach();
  return record(out, n, {a});
}

Tensor square(const Tensor& a) {
  Tensor out = map_unary(a, [](float v) { return v * v; });
  if (!autograd::needs_grad({a})) return out;
  auto n = std::make_shared<SquareBackward>();
  n->a = a;
  return record(out, n, {a});
}

Tensor mul_const(const Tensor& a, const Tensor& mask) {
  if (!(a.shape() == mask.shape()))
    fail("mul_const: tensor {} and mask {} differ", shape_str(a.shape()), shape_str(mask.shape()));
  Tensor out;
  {
    autograd::NoGradGuard ng;
    out = mul(a, mask.detach());
  }
  if (!autograd::needs_grad({a})) return out;
  auto n = std::make_shared<MulConstBackward>();
  n->mask = mask.detach();
  return record(out, n, {a});
}

}  // namespace mpq::ops
