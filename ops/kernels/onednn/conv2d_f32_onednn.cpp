// fp32 conv2d forward / backward-data / backward-weights through oneDNN, on plain NCHW / OIHW buffers.
//
// Primitives are created with format_tag::any so oneDNN picks its blocked layouts (nChw16c etc.) and the
// fast JIT kernels; LayoutBridge reorders plain <-> blocked around the call (a no-op when oneDNN keeps
// the plain layout). With plain nchw descriptors oneDNN 2.6 falls back to gemm-based convolution, which
// measured slower than reorder + blocked kernel on the ResNet 3x3 case (kUseBlockedLayouts toggles it).
// Everything (primitive + reorders) is cached per shape key; one cache entry per direction.
#include <fmt/format.h>

#include "ops/kernels/f32_impls.h"
#include "ops/kernels/onednn/onednn_context.h"

namespace mpq::kernels {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
constexpr auto f32 = memory::data_type::f32;
constexpr bool kUseBlockedLayouts = true;

// The thread count is part of the key: oneDNN balances work for the thread count seen at creation, and
// a primitive made for 2 threads ran 3x slower when executed with 1 (measured on the ResNet 3x3 case).
std::string shape_key(const char* dir, const Conv2dShape& s, bool bias) {
  return fmt::format("conv2d_f32_{}:{},{},{},{}:{},{},{}:s{},{}:p{},{},{},{}:d{},{}:g{}:b{}:t{}", dir, s.N, s.C, s.H,
                     s.W, s.O, s.KH, s.KW, s.stride_h, s.stride_w, s.pad_top, s.pad_left, s.pad_bottom, s.pad_right,
                     s.dil_h, s.dil_w, s.groups, int(bias), num_threads());
}

// Plain user descriptors and the shared convolution parameters.
struct ConvDescs {
  memory::desc x, w, b, y;           // user layouts: x [N,C,H,W], w [O,C/g,KH,KW] (as goihw), b [O], y
  memory::desc x_any, w_any, y_any;  // what the primitive may choose
  memory::dims strides, dil, pad_l, pad_r;
};

ConvDescs make_descs(const Conv2dShape& s) {
  ConvDescs d;
  const memory::dims xd{s.N, s.C, s.H, s.W}, yd{s.N, s.O, s.OH(), s.OW()};
  const memory::dims wd = s.groups > 1 ? memory::dims{s.groups, s.O / s.groups, s.C / s.groups, s.KH, s.KW}
                                       : memory::dims{s.O, s.C, s.KH, s.KW};
  const tag wtag = s.groups > 1 ? tag::goihw : tag::oihw;
  d.x = memory::desc(xd, f32, tag::nchw);
  d.y = memory::desc(yd, f32, tag::nchw);
  d.w = memory::desc(wd, f32, wtag);
  d.b = memory::desc({s.O}, f32, tag::x);
  d.x_any = kUseBlockedLayouts ? memory::desc(xd, f32, tag::any) : d.x;
  d.y_any = kUseBlockedLayouts ? memory::desc(yd, f32, tag::any) : d.y;
  d.w_any = kUseBlockedLayouts ? memory::desc(wd, f32, tag::any) : d.w;
  d.strides = {s.stride_h, s.stride_w};
  d.dil = {s.dil_h - 1, s.dil_w - 1};  // oneDNN counts dilation from 0
  d.pad_l = {s.pad_top, s.pad_left};
  d.pad_r = {s.pad_bottom, s.pad_right};
  return d;
}

dnnl::convolution_forward::primitive_desc fwd_pd(const ConvDescs& d, bool bias) {
  using F = dnnl::convolution_forward;
  const auto pk = dnnl::prop_kind::forward_training;
  const auto alg = dnnl::algorithm::convolution_direct;
  F::desc desc = bias ? F::desc(pk, alg, d.x_any, d.w_any, d.b, d.y_any, d.strides, d.dil, d.pad_l, d.pad_r)
                      : F::desc(pk, alg, d.x_any, d.w_any, d.y_any, d.strides, d.dil, d.pad_l, d.pad_r);
  return F::primitive_desc(desc, onednn::engine());
}

struct FwdEntry {
  dnnl::convolution_forward prim;
  onednn::LayoutBridge x, w, y;
  memory::desc b;
};

struct BwdDataEntry {
  dnnl::convolution_backward_data prim;
  onednn::LayoutBridge gy, w, gx;
};

struct BwdWeightEntry {
  dnnl::convolution_backward_weights prim;
  onednn::LayoutBridge x, gy, gw;
  memory::desc gb;
};

}  // namespace

void conv2d_fwd_f32__onednn(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  check_conv2d_shape(s);
  const FixedTeam team;  // shape_key reads the team size it pins
  const bool has_bias = bias != nullptr;
  auto e = onednn::primitive_cache().get_or_create<FwdEntry>(shape_key("fwd", s, has_bias), [&] {
    const ConvDescs d = make_descs(s);
    const auto pd = fwd_pd(d, has_bias);
    return FwdEntry{dnnl::convolution_forward(pd), onednn::LayoutBridge::input(d.x, pd.src_desc()),
                    onednn::LayoutBridge::input(d.w, pd.weights_desc()),
                    onednn::LayoutBridge::output(d.y, pd.dst_desc()), d.b};
  });
  auto& eng = onednn::engine();
  memory xm = e->x.bring_in(x, 0), wm = e->w.bring_in(w, 1), ym = e->y.out_target(y, 2);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, ym}};
  if (has_bias) args.emplace(DNNL_ARG_BIAS, memory(e->b, eng, const_cast<float*>(bias)));
  e->prim.execute(onednn::stream(), args);
  e->y.finish(ym, y);
  onednn::stream().wait();
}

void conv2d_bwd_data_f32__onednn(const Conv2dShape& s, const float* gy, const float* w, float* gx) {
  check_conv2d_shape(s);
  const FixedTeam team;  // shape_key reads the team size it pins
  auto e = onednn::primitive_cache().get_or_create<BwdDataEntry>(shape_key("bwd_data", s, false), [&] {
    const ConvDescs d = make_descs(s);
    using B = dnnl::convolution_backward_data;
    B::desc desc(dnnl::algorithm::convolution_direct, d.x_any, d.w_any, d.y_any, d.strides, d.dil, d.pad_l, d.pad_r);
    const B::primitive_desc pd(desc, onednn::engine(), fwd_pd(d, false));
    return BwdDataEntry{B(pd), onednn::LayoutBridge::input(d.y, pd.diff_dst_desc()),
                        onednn::LayoutBridge::input(d.w, pd.weights_desc()),
                        onednn::LayoutBridge::output(d.x, pd.diff_src_desc())};
  });
  memory gym = e->gy.bring_in(gy, 0), wm = e->w.bring_in(w, 1), gxm = e->gx.out_target(gx, 2);
  e->prim.execute(onednn::stream(), {{DNNL_ARG_DIFF_DST, gym}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DIFF_SRC, gxm}});
  e->gx.finish(gxm, gx);
  onednn::stream().wait();
}

void conv2d_bwd_weight_f32__onednn(const Conv2dShape& s, const float* x, const float* gy, float* gw, float* gbias) {
  check_conv2d_shape(s);
  const FixedTeam team;  // shape_key reads the team size it pins
  const bool has_bias = gbias != nullptr;
  auto e = onednn::primitive_cache().get_or_create<BwdWeightEntry>(shape_key("bwd_weight", s, has_bias), [&] {
    const ConvDescs d = make_descs(s);
    using B = dnnl::convolution_backward_weights;
    const auto alg = dnnl::algorithm::convolution_direct;
    B::desc desc = has_bias ? B::desc(alg, d.x_any, d.w_any, d.b, d.y_any, d.strides, d.dil, d.pad_l, d.pad_r)
                            : B::desc(alg, d.x_any, d.w_any, d.y_any, d.strides, d.dil, d.pad_l, d.pad_r);
    const B::primitive_desc pd(desc, onednn::engine(), fwd_pd(d, has_bias));
    return BwdWeightEntry{B(pd), onednn::LayoutBridge::input(d.x, pd.src_desc()),
                          onednn::LayoutBridge::input(d.y, pd.diff_dst_desc()),
                          onednn::LayoutBridge::output(d.w, pd.diff_weights_desc()), d.b};
  });
  auto& eng = onednn::engine();
  memory xm = e->x.bring_in(x, 0), gym = e->gy.bring_in(gy, 1), gwm = e->gw.out_target(gw, 2);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_DST, gym}, {DNNL_ARG_DIFF_WEIGHTS, gwm}};
  if (has_bias) args.emplace(DNNL_ARG_DIFF_BIAS, memory(e->gb, eng, gbias));
  e->prim.execute(onednn::stream(), args);
  e->gw.finish(gwm, gw);
  onednn::stream().wait();
}

}  // namespace mpq::kernels
