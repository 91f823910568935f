// fp32 conv2d dispatchers: shape checks and the ordered implementation lists (oneDNN first, the
// reference last). oneDNN is tagged avx2 so that MPQ_ISA=ref selects the reference.
#include <array>

#include "ops/kernels/f32_impls.h"

namespace mpq::kernels {

void check_conv2d_shape(const Conv2dShape& s) {
  check(s.N >= 1 && s.C >= 1 && s.H >= 1 && s.W >= 1 && s.O >= 1 && s.KH >= 1 && s.KW >= 1,
        "conv2d: sizes must be >= 1: N={} C={} H={} W={} O={} KH={} KW={}", s.N, s.C, s.H, s.W, s.O, s.KH, s.KW);
  check(s.stride_h >= 1 && s.stride_w >= 1 && s.dil_h >= 1 && s.dil_w >= 1,
        "conv2d: stride ({},{}) and dilation ({},{}) must be >= 1", s.stride_h, s.stride_w, s.dil_h, s.dil_w);
  check(s.pad_top >= 0 && s.pad_left >= 0 && s.pad_bottom >= 0 && s.pad_right >= 0,
        "conv2d: negative padding t={} l={} b={} r={}", s.pad_top, s.pad_left, s.pad_bottom, s.pad_right);
  check(s.groups >= 1 && s.C % s.groups == 0 && s.O % s.groups == 0, "conv2d: groups={} must divide C={} and O={}",
        s.groups, s.C, s.O);
  check(s.OH() >= 1 && s.OW() >= 1, "conv2d: empty output {}x{} (H={} W={} K={}x{} pad t={} l={} b={} r={} dil={},{})",
        s.OH(), s.OW(), s.H, s.W, s.KH, s.KW, s.pad_top, s.pad_left, s.pad_bottom, s.pad_right, s.dil_h, s.dil_w);
}

namespace {
constexpr std::array<ConvFwdList::Impl, 2> kFwd{{
    {"conv2d_fwd_f32__onednn", Isa::avx2, nullptr, &conv2d_fwd_f32__onednn},
    {"conv2d_fwd_f32_ref", Isa::ref, nullptr, &conv2d_fwd_f32_ref},
}};
constexpr std::array<ConvBwdDataList::Impl, 2> kBwdData{{
    {"conv2d_bwd_data_f32__onednn", Isa::avx2, nullptr, &conv2d_bwd_data_f32__onednn},
    {"conv2d_bwd_data_f32_ref", Isa::ref, nullptr, &conv2d_bwd_data_f32_ref},
}};
constexpr std::array<ConvBwdWeightList::Impl, 2> kBwdWeight{{
    {"conv2d_bwd_weight_f32__onednn", Isa::avx2, nullptr, &conv2d_bwd_weight_f32__onednn},
    {"conv2d_bwd_weight_f32_ref", Isa::ref, nullptr, &conv2d_bwd_weight_f32_ref},
}};
}  // namespace

const ConvFwdList& conv2d_fwd_f32_list() {
  static const ConvFwdList list("conv2d_fwd_f32", kFwd);
  return list;
}
const ConvBwdDataList& conv2d_bwd_data_f32_list() {
  static const ConvBwdDataList list("conv2d_bwd_data_f32", kBwdData);
  return list;
}
const ConvBwdWeightList& conv2d_bwd_weight_f32_list() {
  static const ConvBwdWeightList list("conv2d_bwd_weight_f32", kBwdWeight);
  return list;
}

void conv2d_fwd_f32(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  check_conv2d_shape(s);
  check(x && w && y, "conv2d_fwd_f32: null x, w or y");
  conv2d_fwd_f32_list().select(s).fn(s, x, w, bias, y);
}
void conv2d_bwd_data_f32(const Conv2dShape& s, const float* gy, const float* w, float* gx) {
  check_conv2d_shape(s);
  check(gy && w && gx, "conv2d_bwd_data_f32: null gy, w or gx");
  conv2d_bwd_data_f32_list().select(s).fn(s, gy, w, gx);
}
void conv2d_bwd_weight_f32(const Conv2dShape& s, const float* x, const float* gy, float* gw, float* gbias) {
  check_conv2d_shape(s);
  check(x && gy && gw, "conv2d_bwd_weight_f32: null x, gy or gw");
  conv2d_bwd_weight_f32_list().select(s).fn(s, x, gy, gw, gbias);
}

}  // namespace mpq::kernels
