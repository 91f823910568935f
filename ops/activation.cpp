// Activations, forward and backward. relu/relu6 masks are constants for autograd (their second
// derivative is zero almost everywhere); gelu carries its exact second derivative for double backward.
#include <cmath>

#include "core/autograd/node.h"
#include "core/error.h"
#include "ops/broadcast.h"
#include "ops/ops.h"

namespace mpq::ops {

using autograd::Node;
using autograd::record;

namespace {

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;  // 1 / sqrt(2 pi), the normal density at 0

struct MaskBackward : Node {
  Tensor mask;  // 1 where the input passes the gradient, else 0; constant
  const char* name() const override { return "ReluBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {mul_const(g, mask)}; }
  void release() override { mask = Tensor(); }
};

// d/dx gelu(x) = Phi(x) + x phi(x); its own derivative is phi(x) (2 - x^2).
Tensor gelu_grad(const Tensor& x);

struct GeluGradBackward : Node {
  Tensor x;
  const char* name() const override { return "GeluGradBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    // third-order terms are not needed for Hessian-vector products: this node records no history
    Tensor d2 = map_unary(x.detach(), [](float v) { return std::exp(-0.5f * v * v) * kInvSqrt2Pi * (2.0f - v * v); });
    return {mul(g, d2)};
  }
  void release() override { x = Tensor(); }
};

Tensor gelu_grad(const Tensor& x) {
  Tensor out = map_unary(
      x, [](float v) { return 0.5f * (1.0f + std::erf(v * kInvSqrt2)) + v * std::exp(-0.5f * v * v) * kInvSqrt2Pi; });
  if (!autograd::needs_grad({x})) return out;
  auto n = std::make_shared<GeluGradBackward>();
  n->x = x;
  return record(out, n, {x});
}

struct GeluBackward : Node {
  Tensor x;
  const char* name() const override { return "GeluBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {mul(g, gelu_grad(x))}; }
  void release() override { x = Tensor(); }
};

struct TanhBackward : Node {
  Tensor y;
  const char* name() const override { return "TanhBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    return {mul(g, add_scalar(neg(square(attach_self(y))), 1.0f))};
  }
  void release() override { y = Tensor(); }
};

Tensor masked(const Tensor& x, Tensor out, float lo, float hi) {
  if (!autograd::needs_grad({x})) return out;
  auto n = std::make_shared<MaskBackward>();
  n->mask = map_unary(x.detach(), [lo, hi](float v) { return (v > lo && v < hi) ? 1.0f : 0.0f; });
  return record(out, n, {x});
}

}  // namespace

Tensor relu(const Tensor& x) {
  return masked(x, map_unary(x, [](float v) { return v > 0.0f ? v : 0.0f; }), 0.0f, INFINITY);
}

Tensor relu6(const Tensor& x) {
  return masked(x, map_unary(x, [](float v) { return std::min(std::max(v, 0.0f), 6.0f); }), 0.0f, 6.0f);
}

Tensor gelu(const Tensor& x) {
  Tensor out = map_unary(x, [](float v) { return 0.5f * v * (1.0f + std::erf(v * kInvSqrt2)); });
  if (!autograd::needs_grad({x})) return out;
  auto n = std::make_shared<GeluBackward>();
  n->x = x;
  return record(out, n, {x});
}

Tensor tanh(const Tensor& x) {
  Tensor out = map_unary(x, [](float v) { return std::tanh(v); });
  if (!autograd::needs_grad({x})) return out;
  auto n = std::make_shared<TanhBackward>();
  n->y = out.detach();
  return record(out, n, {x});
}

}  // namespace mpq::ops
