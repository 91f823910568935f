// Raw-pointer NHWC kernels for native CNN inference (no Tensor): im2col, depthwise conv (f32 / f16 / int8),
// max / global-average pooling, and the element-wise conversions at precision boundaries.
//
// Layout: a batch-1 image is [H, W, C] row-major, C innermost; every input and output takes a channel
// stride (ld >= C, in elements) so the executor can read and write channel slices of wider buffers. Pixel
// (h, w) channel c of an image with channel stride ld sits at element (h * W + w) * ld + c.
//
// Depthwise conv numerics (every implementation performs exactly these ops, so all outputs are bit-exact
// across implementations, float paths included):
//   f32 / f16:  acc = +0.0f; for kh ascending, for kw ascending, over taps inside the image:
//                 acc = fma(x, w, acc)        (f16 x and w widened to f32 exactly first)
//               Taps in the padding are skipped. This equals adding 0 * w: acc starts at +0 and an RNE sum
//               is never -0 unless both addends are, so acc is never -0 and acc + (+-0) == acc (finite w).
//               then LowpEpilogue (ops/kernels/lowp.h) with f = acc and scale = 1: y = fma(acc, 1, bias) =
//               acc + bias, residual, clamp, f32 / f16 (RNE) / u8 output.
//   int8 W8A8:  acc = sum over taps inside the image of (x - za) * w      exact int32, order irrelevant
//               (a padded tap behaves as x == za, i.e. a real 0); f = float(acc), scale = sa * s[c] (one
//               f32 multiply), then the same LowpEpilogue: y = fma(f, scale, bias) ...
//   The epilogue's n is the channel c and m the output pixel oh * OW + ow (residual [OH*OW, ld_res]).
//
// Conversions follow quant/observers.h (fake_quant_act) exactly:
//   quantize    q = clamp(nearbyint(x / s) + float(zp), 0, 255)   (f32 division, RNE, f32 add; NaN -> 0)
//   dequantize  y = float(q - zp) * s
//   requantize  dequantize with (s_in, zp_in), then quantize with (s_out, zp_out)
//   f32 <-> f16 round to nearest even (core/dtype.h f32_to_f16), f16 -> f32 exact.
// Note the u8 output of LowpEpilogue multiplies by 1 / out_scale instead (documented there); use these
// conversions where a result must equal fake-quant bit for bit.
#pragma once
#include <cstdint>
#include <limits>
#include <vector>

#include "core/dtype.h"
#include "ops/kernels/lowp.h"
#include "ops/kernels/registry.h"

namespace mpq::kernels {

// ---- geometry ----

// Window geometry of a KxK conv / pool over one [H, W, ldx] image. Asymmetric padding: TF SAME puts the
// extra pixel at the bottom / right. OH = (H + pad_top + pad_bottom - KH) / stride_h + 1 (same for W).
struct ConvGeom {
  int64_t H = 0, W = 0, C = 0;  // input image, channels [0, C) used
  int64_t ldx = 0;              // input channel stride (elements), >= C
  int64_t KH = 1, KW = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t OH = 0, OW = 0;
};
// Explicit padding (ldx = 0 means ldx = C); computes OH / OW; throws on an empty output.
ConvGeom conv_geom(int64_t H, int64_t W, int64_t C, int64_t ldx, int64_t KH, int64_t KW, int64_t stride_h,
                   int64_t stride_w, int64_t pad_top, int64_t pad_left, int64_t pad_bottom, int64_t pad_right);
// TF "SAME": OH = ceil(H / stride_h), total pad = max((OH - 1) * stride_h + KH - H, 0), top = total / 2,
// bottom = total - top (same for W).
ConvGeom conv_geom_same(int64_t H, int64_t W, int64_t C, int64_t ldx, int64_t KH, int64_t KW, int64_t stride_h,
                        int64_t stride_w);
// Throws mpq::Error naming `op` and the bad field (sizes > 0, pads >= 0, ldx >= C, OH / OW consistent).
void check_conv_geom(const ConvGeom& g, const char* op);

// ---- im2col ----
// col [OH*OW, ldcol] row-major (ldcol >= KH*KW*C; 0 means KH*KW*C); column (kh*KW + kw)*C + c of row
// oh*OW + ow holds x[oh*stride_h - pad_top + kh, ow*stride_w - pad_left + kw, c], or *pad_value outside
// the image (the executor passes the activation zero point for u8, 0 for float). Columns past KH*KW*C
// are not written. elem_bytes: 1 (u8 / s8), 2 (f16 / bf16), 4 (f32).
void im2col_nhwc(const void* x, int64_t elem_bytes, const ConvGeom& g, const void* pad_value, void* col,
                 int64_t ldcol = 0);

// ---- depthwise conv: packed weights ----
// Every pack has Cp = C rounded up to kDwChannelBlock (padding channels: weight 0, scale 0), taps
// t = kh * KW + kw in row-major kernel order; weights are given in PyTorch layout [C, 1, KH, KW].
inline constexpr int64_t kDwChannelBlock = 32;

struct PackedDwF32 {
  int64_t C = 0, Cp = 0, KH = 0, KW = 0;
  AlignedBytes w;  // f32 [KH*KW][Cp]
  float at(int64_t t, int64_t c) const { return reinterpret_cast<const float*>(w.data())[t * Cp + c]; }
  size_t weight_bytes() const { return w.bytes; }
};
struct PackedDwF16 {
  int64_t C = 0, Cp = 0, KH = 0, KW = 0;
  AlignedBytes w;  // f16 bits [KH*KW][Cp]
  uint16_t at(int64_t t, int64_t c) const { return reinterpret_cast<const uint16_t*>(w.data())[t * Cp + c]; }
  size_t weight_bytes() const { return w.bytes; }
};
struct PackedDwQ8 {
  int64_t C = 0, Cp = 0, KH = 0, KW = 0;
  AlignedBytes w;             // s8 [KH*KW][Cp]
  std::vector<float> scale;   // [Cp] symmetric per-channel weight scale s[c]
  std::vector<int32_t> wsum;  // [Cp] sum over taps of w (zero-point folding; the current kernels do not use it)
  int8_t at(int64_t t, int64_t c) const { return int8_t(w.data()[t * Cp + c]); }
  size_t weight_bytes() const { return w.bytes + (scale.size() + wsum.size()) * 4; }
};
// W: f32 [C, 1, KH, KW].
PackedDwF32 pack_dw_f32(const float* W, int64_t C, int64_t KH, int64_t KW);
// W: f32 [C, 1, KH, KW], rounded RNE to f16 (f32_to_f16).
PackedDwF16 pack_dw_f16(const float* W, int64_t C, int64_t KH, int64_t KW);
// W: s8 [C, 1, KH, KW] already quantized (quant/quantizer.h); scales: f32 [C].
PackedDwQ8 pack_dw_q8(const int8_t* W, const float* scales, int64_t C, int64_t KH, int64_t KW);

// ---- depthwise conv: arguments and entry points ----
template <class PW>
struct DwConvArgs {
  ConvGeom g;               // input geometry; g.C == w->C, g.KH == w->KH, g.KW == w->KW
  const void* x = nullptr;  // [H, W, g.ldx]: f32 (DwF32), f16 bits (DwF16) or u8 (DwQ8)
  const PW* w = nullptr;
  void* y = nullptr;  // [OH, OW, ldy] f32 / f16 / u8 per ep.out
  int64_t ldy = 0;    // output channel stride, >= C
  float sa = 1.0f;    // int8 only: activation scale
  int32_t za = 0;     // int8 only: activation zero point [0, 255]
  LowpEpilogue ep;    // bias [C], residual [OH*OW, ld_res], clamp, output dtype
};
using DwF32Args = DwConvArgs<PackedDwF32>;
using DwF16Args = DwConvArgs<PackedDwF16>;
using DwQ8Args = DwConvArgs<PackedDwQ8>;

void dwconv_f32(const DwF32Args& a);
void dwconv_f16(const DwF16Args& a);
void dwconv_qu8_qc8w(const DwQ8Args& a);
void dwconv_f32_ref(const DwF32Args& a);
void dwconv_f16_ref(const DwF16Args& a);
void dwconv_qu8_qc8w_ref(const DwQ8Args& a);
// Implementations (ops/kernels/x86/; the tests call every one directly).
void dwconv_f32_c16__avx512(const DwF32Args& a);
void dwconv_f16_c16__avx512(const DwF16Args& a);
void dwconv_qu8_qc8w_c16__avx512vnni(const DwQ8Args& a);
void check_dw_args(const DwF32Args& a);
void check_dw_args(const DwF16Args& a);
void check_dw_args(const DwQ8Args& a);

// ---- pooling ----
// Max pool over KxK windows (g.KH, g.KW, strides, asymmetric pads < kernel size): padding never wins
// (only taps inside the image are compared). dt: f32, f16 (compared as f32, written back exactly) or u8
// (max commutes with the monotone quantization, so u8 max == quantized f32 max, exact). Running max in
// (kh, kw) ascending order as m = x > m ? x : m (maxps), so NaN is not propagated.
struct MaxPoolArgs {
  DType dt = DType::f32;
  const void* x = nullptr;  // [H, W, g.ldx]
  ConvGeom g;
  void* y = nullptr;  // [OH, OW, ldy], same dtype
  int64_t ldy = 0;
};
void maxpool_nhwc(const MaxPoolArgs& a);
void maxpool_nhwc_ref(const MaxPoolArgs& a);

// Global average pool [HW, ldx] -> f32 [C]:
//   f32 / f16:  s = +0; s += x[p, c] in f32 for p ascending; y[c] = s / float(HW)
//   u8:         acc = sum_p (q[p, c] - zp) exact int32; y[c] = (float(acc) * scale) / float(HW)
// (HW * 255 < 2^24, so float(acc) is exact for every image size the models use.)
struct GapArgs {
  DType dt = DType::f32;
  const void* x = nullptr;  // [HW, ldx]
  int64_t HW = 0, C = 0, ldx = 0;
  float scale = 1.0f;  // u8 only
  int32_t zp = 0;      // u8 only
  float* y = nullptr;  // [C]
};
void global_avgpool_nhwc(const GapArgs& a);
void global_avgpool_nhwc_ref(const GapArgs& a);

// ---- conversions (n contiguous elements; formulas at the top of this file) ----
struct CvtArgs {
  int64_t n = 0;
  const void* x = nullptr;
  void* y = nullptr;
  float scale = 1.0f;      // quantize: output scale; dequantize / requantize: input scale
  int32_t zp = 0;          // likewise
  float scale_out = 1.0f;  // requantize only
  int32_t zp_out = 0;      // requantize only
};
void quantize_f32_u8(const float* x, int64_t n, float scale, int32_t zp, uint8_t* q);
void dequantize_u8_f32(const uint8_t* q, int64_t n, float scale, int32_t zp, float* y);
void requantize_u8_u8(const uint8_t* q, int64_t n, float scale_in, int32_t zp_in, float scale_out, int32_t zp_out,
                      uint8_t* y);
void convert_f32_f16(const float* x, int64_t n, uint16_t* y);
void convert_f16_f32(const uint16_t* x, int64_t n, float* y);
// Scalar forms (the reference formulas, usable by callers that need one value).
uint8_t quantize_value(float x, float scale, int32_t zp);
inline float dequantize_value(uint8_t q, float scale, int32_t zp) { return float(int32_t(q) - zp) * scale; }

void quantize_f32_u8_ref(const CvtArgs& a);
void dequantize_u8_f32_ref(const CvtArgs& a);
void requantize_u8_u8_ref(const CvtArgs& a);
void convert_f32_f16_ref(const CvtArgs& a);
void convert_f16_f32_ref(const CvtArgs& a);

// Image input: x f32 [C, H, W] (NCHW, one image) -> y f32 [H, W, ldy].
struct TransposeArgs {
  const float* x = nullptr;
  int64_t C = 0, H = 0, W = 0;
  float* y = nullptr;
  int64_t ldy = 0;
};
void nchw_to_nhwc_f32(const TransposeArgs& a);
void nchw_to_nhwc_f32_ref(const TransposeArgs& a);

// Residual add with clamp over [rows, C] (rows = pixels): y = min(max(a + b, lo), hi) (maxps / minps
// order as LowpEpilogue), f32 or f16 (f16: a, b widened exactly, the f32 sum rounded RNE to f16).
// y may alias a or b (same ld).
struct AddArgs {
  DType dt = DType::f32;  // f32 or f16
  int64_t rows = 0, C = 0;
  const void* a = nullptr;  // [rows, lda]
  int64_t lda = 0;
  const void* b = nullptr;  // [rows, ldb]
  int64_t ldb = 0;
  void* y = nullptr;  // [rows, ldy]
  int64_t ldy = 0;
  float lo = -std::numeric_limits<float>::infinity();
  float hi = std::numeric_limits<float>::infinity();
};
void add_clamp_nhwc(const AddArgs& a);
void add_clamp_nhwc_ref(const AddArgs& a);

// ---- dense conv W4A8 as an implicit GEMM ----
// C[OH*OW, N] = epilogue( im2col(x)[OH*OW, K] * W[N, K]^T ): the im2col matrix of im2col_nhwc (columns in
// (kh, kw, c) order, K = KH*KW*C == w->K, taps outside the image read the zero point za, i.e. a real 0) is
// never materialised whole: implementations gather rows block by block. Integer math and epilogue are
// gemm_qu8_qc4w's (ops/kernels/lowp.h) on that matrix with u8 activations (m = output pixel oh*OW + ow,
// n = output channel), so every implementation is bit-exact with conv_qu8_qc4w_ref
// (= im2col_nhwc_ref + gemm_qu8_qc4w_ref).
struct Q4ConvArgs {
  ConvGeom g;                    // input geometry; g.KH * g.KW * g.C == w->K
  const uint8_t* x = nullptr;    // [H, W, g.ldx] u8
  float sa = 1.0f;               // activation scale
  int32_t za = 0;                // activation zero point [0, 255] (also the padding value)
  const PackedQ4W* w = nullptr;  // per channel or grouped
  void* C = nullptr;             // [OH*OW, ldc] f32 or u8 per ep.out
  int64_t ldc = 0;
  LowpEpilogue ep;  // bias [N], residual [OH*OW, ld_res], clamp, output
};
void conv_qu8_qc4w(const Q4ConvArgs& a);
void conv_qu8_qc4w_ref(const Q4ConvArgs& a);
void conv_qu8_qc4w_14x32c4_panel__avx512vnni(
    const Q4ConvArgs& a);  // ops/kernels/x86/gemm_qu8_qc4w_panel__avx512vnni.cpp
void check_q4_conv_args(const Q4ConvArgs& a);
// The GEMM arguments equivalent to `a` on a materialised im2col matrix col [OH*OW, K] (C, ep and scales as a).
Q4GemmArgs q4_conv_gemm_args(const Q4ConvArgs& a, const uint8_t* col);
using Q4ConvFn = void (*)(const Q4ConvArgs&);
using Q4ConvList = KernelList<Q4ConvArgs, Q4ConvFn>;
const Q4ConvList& conv_qu8_qc4w_list();

// ---- dispatch lists (first usable entry runs; reference last) ----
struct Im2colArgs {
  const void* x = nullptr;
  int64_t elem_bytes = 4;
  ConvGeom g;
  const void* pad_value = nullptr;
  void* col = nullptr;
  int64_t ldcol = 0;  // resolved (> 0) by the entry point
};
void im2col_nhwc_ref(const Im2colArgs& a);

using DwF32Fn = void (*)(const DwF32Args&);
using DwF16Fn = void (*)(const DwF16Args&);
using DwQ8Fn = void (*)(const DwQ8Args&);
using MaxPoolFn = void (*)(const MaxPoolArgs&);
using GapFn = void (*)(const GapArgs&);
using CvtFn = void (*)(const CvtArgs&);
using TransposeFn = void (*)(const TransposeArgs&);
using AddFn = void (*)(const AddArgs&);
using Im2colFn = void (*)(const Im2colArgs&);
using DwF32List = KernelList<DwF32Args, DwF32Fn>;
using DwF16List = KernelList<DwF16Args, DwF16Fn>;
using DwQ8List = KernelList<DwQ8Args, DwQ8Fn>;
using MaxPoolList = KernelList<MaxPoolArgs, MaxPoolFn>;
using GapList = KernelList<GapArgs, GapFn>;
using CvtList = KernelList<CvtArgs, CvtFn>;
using TransposeList = KernelList<TransposeArgs, TransposeFn>;
using AddList = KernelList<AddArgs, AddFn>;
using Im2colList = KernelList<Im2colArgs, Im2colFn>;

const DwF32List& dwconv_f32_list();
const DwF16List& dwconv_f16_list();
const DwQ8List& dwconv_qu8_qc8w_list();
const MaxPoolList& maxpool_nhwc_list();
const GapList& global_avgpool_nhwc_list();
const CvtList& quantize_f32_u8_list();
const CvtList& dequantize_u8_f32_list();
const CvtList& requantize_u8_u8_list();
const CvtList& convert_f32_f16_list();
const CvtList& convert_f16_f32_list();
const TransposeList& nchw_to_nhwc_f32_list();
const AddList& add_clamp_nhwc_list();
const Im2colList& im2col_nhwc_list();

// Implementations (ops/kernels/x86/; tested against the references entry by entry).
void im2col_nhwc__avx2(const Im2colArgs& a);
void maxpool_nhwc__avx512(const MaxPoolArgs& a);
void global_avgpool_nhwc__avx512(const GapArgs& a);
void quantize_f32_u8__avx512(const CvtArgs& a);
void dequantize_u8_f32__avx512(const CvtArgs& a);
void requantize_u8_u8__avx512(const CvtArgs& a);
void convert_f32_f16__avx512(const CvtArgs& a);
void convert_f16_f32__avx512(const CvtArgs& a);
void add_clamp_nhwc__avx512(const AddArgs& a);
void quantize_f32_u8__avx2(const CvtArgs& a);
void dequantize_u8_f32__avx2(const CvtArgs& a);
void requantize_u8_u8__avx2(const CvtArgs& a);
void convert_f32_f16__avx2(const CvtArgs& a);
void convert_f16_f32__avx2(const CvtArgs& a);
void add_clamp_nhwc__avx2(const AddArgs& a);

// Argument validation (throws mpq::Error naming the op and the bad field); every implementation calls it.
void check_maxpool_args(const MaxPoolArgs& a);
void check_gap_args(const GapArgs& a);
void check_cvt_args(const CvtArgs& a, const char* op);
void check_transpose_args(const TransposeArgs& a);
void check_add_args(const AddArgs& a);
void check_im2col_args(const Im2colArgs& a);

}  // namespace mpq::kernels
