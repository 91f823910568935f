// 2-D convolution and its two gradient helpers, each a differentiable op.
//
// The three ops form a closed family under differentiation (all are bilinear):
//   y  = conv2d(x, w)                 y[N,O,OH,OW]
//   gx = conv2d_grad_input(gy, w)     = A_w^T gy        (A_w: the linear map x -> conv(x, w))
//   gw = conv2d_grad_weight(x, gy)    = d/dw <gy, conv(x, w)>
// Adjoint identities used by the backward rules (g is the incoming gradient of each op's output):
//   conv2d:             d/dx = grad_input(g, w),  d/dw = grad_weight(x, g),  d/db = sum_{N,H,W} g
//   conv2d_grad_input:  <g, A_w^T gy> = <A_w g, gy> = <gy, conv(g, w)>
//                       d/dgy = conv2d(g, w),     d/dw = grad_weight(g, gy)
//   conv2d_grad_weight: <g, gw> = <gy, conv(x, g)>
//                       d/dx = grad_input(gy, g), d/dgy = conv2d(x, g)
// The input shape is carried explicitly through the helpers, since with stride > 1 several input sizes
// give the same output size.
#include <memory>

#include "core/autograd/node.h"
#include "core/error.h"
#include "ops/kernels/f32.h"
#include "ops/ops.h"

namespace mpq::ops {

namespace {

std::string params_str(const Conv2dParams& p) {
  return fmt::format("stride ({}, {}), pad (t {}, l {}, b {}, r {}), dilation ({}, {}), groups {}", p.stride_h,
                     p.stride_w, p.pad_top, p.pad_left, p.pad_bottom, p.pad_right, p.dil_h, p.dil_w, p.groups);
}

// Validates x_shape [N, C, H, W] against w_shape [O, C/groups, KH, KW] and builds the kernel descriptor.
kernels::Conv2dShape conv_shape(const char* op, const Shape& x_shape, const Shape& w_shape, const Conv2dParams& p) {
  if (!(x_shape.size() == 4)) fail("{}: input must be 4-D [N, C, H, W], got {}", op, shape_str(x_shape));
  if (!(w_shape.size() == 4))
    fail("{}: weight must be 4-D [O, C/groups, KH, KW], got {} (input {})", op, shape_str(w_shape), shape_str(x_shape));
  check(p.groups >= 1 && p.stride_h >= 1 && p.stride_w >= 1 && p.dil_h >= 1 && p.dil_w >= 1 && p.pad_top >= 0 &&
            p.pad_left >= 0 && p.pad_bottom >= 0 && p.pad_right >= 0,
        "{}: invalid parameters: {}", op, params_str(p));
  if (!(x_shape[1] == w_shape[1] * p.groups))
    fail("{}: input {} has {} channels but weight {} with groups={} expects {}", op, shape_str(x_shape), x_shape[1],
         shape_str(w_shape), p.groups, w_shape[1] * p.groups);
  if (!(w_shape[0] % p.groups == 0))
    fail("{}: weight {} has {} output channels, not divisible by groups={} (input {})", op, shape_str(w_shape),
         w_shape[0], p.groups, shape_str(x_shape));
  kernels::Conv2dShape s{x_shape[0],  x_shape[1], x_shape[2], x_shape[3], w_shape[0], w_shape[2],
                         w_shape[3],  p.stride_h, p.stride_w, p.pad_top,  p.pad_left, p.pad_bottom,
                         p.pad_right, p.dil_h,    p.dil_w,    p.groups};
  if (!(s.H + p.pad_top + p.pad_bottom >= p.dil_h * (s.KH - 1) + 1 &&
        s.W + p.pad_left + p.pad_right >= p.dil_w * (s.KW - 1) + 1))
    fail("{}: kernel {} (dilated) does not fit padded input {} with {}", op, shape_str(w_shape), shape_str(x_shape),
         params_str(p));
  return s;
}

Shape out_shape_of(const kernels::Conv2dShape& s) { return {s.N, s.O, s.OH(), s.OW()}; }

Tensor as_f32_contig(const Tensor& t) {
  if (!(t.dtype() == DType::f32))
    fail("conv2d: expects f32 tensors, got shape {} of another dtype", shape_str(t.shape()));
  return t.contiguous();
}

struct Conv2dNode : autograd::Node {
  Tensor x, w;  // x [N, C, H, W], w [O, C/g, KH, KW] (inputs, with their history)
  bool has_bias;
  Conv2dParams p;
  const char* name() const override { return "conv2d"; }
  std::vector<Tensor> backward(const Tensor& g) override {  // g [N, O, OH, OW]
    Tensor gx, gw, gb;
    if (needs_input_grad(0)) gx = conv2d_grad_input(g, w, x.shape(), p);
    if (needs_input_grad(1)) gw = conv2d_grad_weight(x, g, w.shape(), p);
    if (has_bias && needs_input_grad(2)) gb = sum(g, {0, 2, 3}, false);  // [O]
    return {gx, gw, gb};
  }
  void release() override { x = w = Tensor(); }
};

struct Conv2dGradInputNode : autograd::Node {
  Tensor gy, w;  // gy [N, O, OH, OW], w [O, C/g, KH, KW]
  Conv2dParams p;
  const char* name() const override { return "conv2d_grad_input"; }
  std::vector<Tensor> backward(const Tensor& g) override {  // g [N, C, H, W]
    Tensor ggy, gw;
    if (needs_input_grad(0)) ggy = conv2d(g, w, Tensor(), p);
    if (needs_input_grad(1)) gw = conv2d_grad_weight(g, gy, w.shape(), p);
    return {ggy, gw};
  }
  void release() override { gy = w = Tensor(); }
};

struct Conv2dGradWeightNode : autograd::Node {
  Tensor x, gy;  // x [N, C, H, W], gy [N, O, OH, OW]
  Conv2dParams p;
  const char* name() const override { return "conv2d_grad_weight"; }
  std::vector<Tensor> backward(const Tensor& g) override {  // g [O, C/g, KH, KW]
    Tensor gx, ggy;
    if (needs_input_grad(0)) gx = conv2d_grad_input(gy, g, x.shape(), p);
    if (needs_input_grad(1)) ggy = conv2d(x, g, Tensor(), p);
    return {gx, ggy};
  }
  void release() override { x = gy = Tensor(); }
};

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p) {
  check(x.defined() && w.defined(), "conv2d: input and weight must be defined");
  const kernels::Conv2dShape s = conv_shape("conv2d", x.shape(), w.shape(), p);
  if (b.defined())
    if (!(b.dim() == 1 && b.size(0) == s.O))
      fail("conv2d: bias {} does not match weight {} ({} output channels)", shape_str(b.shape()), shape_str(w.shape()),
           s.O);
  const Tensor xc = as_f32_contig(x);                           // [N, C, H, W]
  const Tensor wc = as_f32_contig(w);                           // [O, C/g, KH, KW]
  const Tensor bc = b.defined() ? as_f32_contig(b) : Tensor();  // [O]
  Tensor y = Tensor::empty(out_shape_of(s));                    // [N, O, OH, OW]
  kernels::conv2d_fwd_f32(s, xc.data<float>(), wc.data<float>(), bc.defined() ? bc.data<float>() : nullptr,
                          y.data<float>());
  if (!autograd::needs_grad({x, w, b})) return y;
  auto node = std::make_shared<Conv2dNode>();
  node->x = x;
  node->w = w;
  node->has_bias = b.defined();
  node->p = p;
  return autograd::record(y, node, {x, w, b});
}

Tensor conv2d_grad_input(const Tensor& gy, const Tensor& w, const Shape& x_shape, const Conv2dParams& p) {
  check(gy.defined() && w.defined(), "conv2d_grad_input: gy and weight must be defined");
  const kernels::Conv2dShape s = conv_shape("conv2d_grad_input", x_shape, w.shape(), p);
  if (!(gy.shape() == out_shape_of(s)))
    fail("conv2d_grad_input: output gradient {} does not match input {} and weight {} (expected {})",
         shape_str(gy.shape()), shape_str(x_shape), shape_str(w.shape()), shape_str(out_shape_of(s)));
  const Tensor gyc = as_f32_contig(gy);  // [N, O, OH, OW]
  const Tensor wc = as_f32_contig(w);    // [O, C/g, KH, KW]
  Tensor gx = Tensor::empty(x_shape);    // [N, C, H, W]
  kernels::conv2d_bwd_data_f32(s, gyc.data<float>(), wc.data<float>(), gx.data<float>());
  if (!autograd::needs_grad({gy, w})) return gx;
  auto node = std::make_shared<Conv2dGradInputNode>();
  node->gy = gy;
  node->w = w;
  node->p = p;
  return autograd::record(gx, node, {gy, w});
}

Tensor conv2d_grad_weight(const Tensor& x, const Tensor& gy, const Shape& w_shape, const Conv2dParams& p) {
  check(x.defined() && gy.defined(), "conv2d_grad_weight: input and gy must be defined");
  const kernels::Conv2dShape s = conv_shape("conv2d_grad_weight", x.shape(), w_shape, p);
  if (!(gy.shape() == out_shape_of(s)))
    fail("conv2d_grad_weight: output gradient {} does not match input {} and weight {} (expected {})",
         shape_str(gy.shape()), shape_str(x.shape()), shape_str(w_shape), shape_str(out_shape_of(s)));
  const Tensor xc = as_f32_contig(x);    // [N, C, H, W]
  const Tensor gyc = as_f32_contig(gy);  // [N, O, OH, OW]
  Tensor gw = Tensor::empty(w_shape);    // [O, C/g, KH, KW]
  kernels::conv2d_bwd_weight_f32(s, xc.data<float>(), gyc.data<float>(), gw.data<float>(), nullptr);
  if (!autograd::needs_grad({x, gy})) return gw;
  auto node = std::make_shared<Conv2dGradWeightNode>();
  node->x = x;
  node->gy = gy;
  node->p = p;
  return autograd::record(gw, node, {x, gy});
}

}  // namespace mpq::ops
