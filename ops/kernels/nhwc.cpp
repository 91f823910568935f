// NHWC kernels: geometry helpers, depthwise weight packing, argument checks and the dispatch lists
// (ops/kernels/nhwc.h). Each list is ordered fastest first, the plain reference last.
//
// Depthwise: no oneDNN entry. bench/bench_nhwc.cpp (MobileNetV2's 10 depthwise shapes, 1 thread, CPU-time
// medians of 9 interleaved repetitions, loaded machine) has ours 1.1-1.6x faster than oneDNN 2.6 in f32
// (brdgmm_dw) and 1.2-1.8x in u8s8 (jit_int8); ours is also bit-exact with the reference, oneDNN is not.
#include <algorithm>
#include <array>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"
#include "ops/kernels/nhwc.h"

namespace mpq::kernels {

namespace {
int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
}  // namespace

// ---- geometry ----
ConvGeom conv_geom(int64_t H, int64_t W, int64_t C, int64_t ldx, int64_t KH, int64_t KW, int64_t stride_h,
                   int64_t stride_w, int64_t pad_top, int64_t pad_left, int64_t pad_bottom, int64_t pad_right) {
  ConvGeom g;
  g.H = H, g.W = W, g.C = C, g.ldx = ldx == 0 ? C : ldx;
  g.KH = KH, g.KW = KW, g.stride_h = stride_h, g.stride_w = stride_w;
  g.pad_top = pad_top, g.pad_left = pad_left, g.pad_bottom = pad_bottom, g.pad_right = pad_right;
  check(stride_h > 0 && stride_w > 0, "conv_geom: strides must be > 0, got {}x{}", stride_h, stride_w);
  g.OH = (H + pad_top + pad_bottom - KH) / stride_h + 1;
  g.OW = (W + pad_left + pad_right - KW) / stride_w + 1;
  check_conv_geom(g, "conv_geom");
  return g;
}

ConvGeom conv_geom_same(int64_t H, int64_t W, int64_t C, int64_t ldx, int64_t KH, int64_t KW, int64_t stride_h,
                        int64_t stride_w) {
  check(stride_h > 0 && stride_w > 0 && H > 0 && W > 0, "conv_geom_same: need H, W, strides > 0, got H={} W={} {}x{}",
        H, W, stride_h, stride_w);
  const int64_t OH = (H + stride_h - 1) / stride_h, OW = (W + stride_w - 1) / stride_w;
  const int64_t ph = std::max<int64_t>((OH - 1) * stride_h + KH - H, 0);
  const int64_t pw = std::max<int64_t>((OW - 1) * stride_w + KW - W, 0);
  return conv_geom(H, W, C, ldx, KH, KW, stride_h, stride_w, ph / 2, pw / 2, ph - ph / 2, pw - pw / 2);
}

void check_conv_geom(const ConvGeom& g, const char* op) {
  check(g.H > 0 && g.W > 0 && g.C > 0, "{}: need H, W, C > 0, got H={} W={} C={}", op, g.H, g.W, g.C);
  check(g.ldx >= g.C, "{}: input channel stride ldx={} < C={}", op, g.ldx, g.C);
  check(g.KH > 0 && g.KW > 0, "{}: kernel {}x{} must be positive", op, g.KH, g.KW);
  check(g.stride_h > 0 && g.stride_w > 0, "{}: strides {}x{} must be positive", op, g.stride_h, g.stride_w);
  check(g.pad_top >= 0 && g.pad_left >= 0 && g.pad_bottom >= 0 && g.pad_right >= 0,
        "{}: negative padding (top {} left {} bottom {} right {})", op, g.pad_top, g.pad_left, g.pad_bottom,
        g.pad_right);
  const int64_t eh = g.H + g.pad_top + g.pad_bottom - g.KH, ew = g.W + g.pad_left + g.pad_right - g.KW;
  check(eh >= 0 && ew >= 0, "{}: kernel {}x{} larger than the padded input {}x{}", op, g.KH, g.KW,
        g.H + g.pad_top + g.pad_bottom, g.W + g.pad_left + g.pad_right);
  check(g.OH == eh / g.stride_h + 1 && g.OW == ew / g.stride_w + 1,
        "{}: output {}x{} inconsistent with input {}x{}, kernel {}x{}, stride {}x{}, pads (t{} l{} b{} r{}): expected "
        "{}x{}",
        op, g.OH, g.OW, g.H, g.W, g.KH, g.KW, g.stride_h, g.stride_w, g.pad_top, g.pad_left, g.pad_bottom, g.pad_right,
        eh / g.stride_h + 1, ew / g.stride_w + 1);
}

// ---- depthwise packing ----
namespace {
template <class P>
void dw_shape(P& p, const char* op, const void* W, int64_t C, int64_t KH, int64_t KW) {
  check(W != nullptr && C > 0 && KH > 0 && KW > 0 && KH * KW <= 1024,
        "{}: need weights, C > 0 and a kernel of 1..1024 taps, got C={} kernel {}x{}", op, C, KH, KW);
  p.C = C, p.Cp = round_up(C, kDwChannelBlock), p.KH = KH, p.KW = KW;
}
}  // namespace

PackedDwF32 pack_dw_f32(const float* W, int64_t C, int64_t KH, int64_t KW) {
  PackedDwF32 p;
  dw_shape(p, "pack_dw_f32", W, C, KH, KW);
  p.w.alloc(size_t(KH * KW * p.Cp) * 4);  // f32 [KH*KW][Cp]
  auto* d = reinterpret_cast<float*>(p.w.data());
  for (int64_t c = 0; c < C; ++c)
    for (int64_t t = 0; t < KH * KW; ++t) d[t * p.Cp + c] = W[c * KH * KW + t];
  return p;
}

PackedDwF16 pack_dw_f16(const float* W, int64_t C, int64_t KH, int64_t KW) {
  PackedDwF16 p;
  dw_shape(p, "pack_dw_f16", W, C, KH, KW);
  p.w.alloc(size_t(KH * KW * p.Cp) * 2);  // f16 [KH*KW][Cp]
  auto* d = reinterpret_cast<uint16_t*>(p.w.data());
  for (int64_t c = 0; c < C; ++c)
    for (int64_t t = 0; t < KH * KW; ++t) d[t * p.Cp + c] = f32_to_f16(W[c * KH * KW + t]);
  return p;
}

PackedDwQ8 pack_dw_q8(const int8_t* W, const float* scales, int64_t C, int64_t KH, int64_t KW) {
  PackedDwQ8 p;
  dw_shape(p, "pack_dw_q8", W, C, KH, KW);
  check(scales != nullptr, "pack_dw_q8: scales are null (C={})", C);
  p.w.alloc(size_t(KH * KW * p.Cp));  // s8 [KH*KW][Cp]
  p.scale.assign(size_t(p.Cp), 0.0f);
  p.wsum.assign(size_t(p.Cp), 0);
  for (int64_t c = 0; c < C; ++c) {
    check(std::isfinite(scales[c]) && scales[c] >= 0.0f, "pack_dw_q8: channel {} has scale {}", c, scales[c]);
    for (int64_t t = 0; t < KH * KW; ++t) {
      const int8_t v = W[c * KH * KW + t];
      p.w.data()[t * p.Cp + c] = uint8_t(v);
      p.wsum[size_t(c)] += v;
    }
    p.scale[size_t(c)] = scales[c];
  }
  return p;
}

// ---- checks ----
namespace {
void check_out(const char* op, const void* y, int64_t ldy, int64_t C, int64_t M, const LowpEpilogue& ep) {
  check(y != nullptr, "{}: output is null", op);
  check(ldy >= C, "{}: output channel stride ldy={} < C={}", op, ldy, C);
  check_lowp_epilogue(op, ep, C);
  (void)M;
}
template <class PW>
void check_dw(const char* op, const DwConvArgs<PW>& a) {
  check(a.w != nullptr && a.x != nullptr, "{}: packed weights or input is null", op);
  check_conv_geom(a.g, op);
  check(a.g.C == a.w->C && a.g.KH == a.w->KH && a.g.KW == a.w->KW,
        "{}: geometry C={} kernel {}x{} does not match the packed weights C={} kernel {}x{}", op, a.g.C, a.g.KH, a.g.KW,
        a.w->C, a.w->KH, a.w->KW);
  check_out(op, a.y, a.ldy, a.g.C, a.g.OH * a.g.OW, a.ep);
}
bool pool_dtype_ok(DType dt) { return dt == DType::f32 || dt == DType::f16 || dt == DType::u8; }
}  // namespace

void check_dw_args(const DwF32Args& a) { check_dw("dwconv_f32", a); }
void check_dw_args(const DwF16Args& a) { check_dw("dwconv_f16", a); }
void check_dw_args(const DwQ8Args& a) {
  check_dw("dwconv_qu8_qc8w", a);
  check(a.za >= 0 && a.za <= 255, "dwconv_qu8_qc8w: activation zero point {} out of [0, 255]", a.za);
}

void check_maxpool_args(const MaxPoolArgs& a) {
  check(pool_dtype_ok(a.dt), "maxpool_nhwc: dtype {} is not f32, f16 or u8", dtype_name(a.dt));
  check(a.x != nullptr && a.y != nullptr, "maxpool_nhwc: input or output is null");
  check_conv_geom(a.g, "maxpool_nhwc");
  check(a.g.pad_top < a.g.KH && a.g.pad_bottom < a.g.KH && a.g.pad_left < a.g.KW && a.g.pad_right < a.g.KW,
        "maxpool_nhwc: padding (t{} l{} b{} r{}) must be smaller than the kernel {}x{} (a window of padding only)",
        a.g.pad_top, a.g.pad_left, a.g.pad_bottom, a.g.pad_right, a.g.KH, a.g.KW);
  check(a.ldy >= a.g.C, "maxpool_nhwc: output channel stride ldy={} < C={}", a.ldy, a.g.C);
}

void check_gap_args(const GapArgs& a) {
  check(pool_dtype_ok(a.dt), "global_avgpool_nhwc: dtype {} is not f32, f16 or u8", dtype_name(a.dt));
  check(a.x != nullptr && a.y != nullptr, "global_avgpool_nhwc: input or output is null");
  check(a.HW > 0 && a.C > 0 && a.ldx >= a.C, "global_avgpool_nhwc: need HW > 0, C > 0, ldx >= C, got HW={} C={} ldx={}",
        a.HW, a.C, a.ldx);
  check(a.dt != DType::u8 || a.HW * 255 < (int64_t(1) << 24),
        "global_avgpool_nhwc: u8 input with HW={} pixels overflows the exact f32 sum", a.HW);
  check(a.dt != DType::u8 || (a.zp >= 0 && a.zp <= 255), "global_avgpool_nhwc: zero point {} out of [0, 255]", a.zp);
}

void check_cvt_args(const CvtArgs& a, const char* op) {
  check(a.n >= 0, "{}: negative element count {}", op, a.n);
  check(a.n == 0 || (a.x != nullptr && a.y != nullptr), "{}: input or output is null (n={})", op, a.n);
  check(a.scale > 0.0f && a.scale_out > 0.0f, "{}: scales must be > 0, got {} / {}", op, a.scale, a.scale_out);
  check(a.zp >= 0 && a.zp <= 255 && a.zp_out >= 0 && a.zp_out <= 255, "{}: zero points {} / {} out of [0, 255]", op,
        a.zp, a.zp_out);
}

void check_transpose_args(const TransposeArgs& a) {
  check(a.x != nullptr && a.y != nullptr, "nchw_to_nhwc_f32: input or output is null");
  check(a.C > 0 && a.H > 0 && a.W > 0 && a.ldy >= a.C,
        "nchw_to_nhwc_f32: need C, H, W > 0, ldy >= C, got {}x{}x{} ldy={}", a.C, a.H, a.W, a.ldy);
}

void check_add_args(const AddArgs& a) {
  check(a.dt == DType::f32 || a.dt == DType::f16, "add_clamp_nhwc: dtype {} is not f32 or f16", dtype_name(a.dt));
  check(a.rows >= 0 && a.C > 0, "add_clamp_nhwc: need rows >= 0 and C > 0, got rows={} C={}", a.rows, a.C);
  check(a.rows == 0 || (a.a != nullptr && a.b != nullptr && a.y != nullptr), "add_clamp_nhwc: null operand");
  check(a.lda >= a.C && a.ldb >= a.C && a.ldy >= a.C, "add_clamp_nhwc: strides lda={} ldb={} ldy={} must be >= C={}",
        a.lda, a.ldb, a.ldy, a.C);
}

void check_im2col_args(const Im2colArgs& a) {
  check(a.elem_bytes == 1 || a.elem_bytes == 2 || a.elem_bytes == 4,
        "im2col_nhwc: elem_bytes must be 1, 2 or 4, got {}", a.elem_bytes);
  check(a.x != nullptr && a.col != nullptr && a.pad_value != nullptr, "im2col_nhwc: input, col or pad_value is null");
  check_conv_geom(a.g, "im2col_nhwc");
  check(a.ldcol >= a.g.KH * a.g.KW * a.g.C, "im2col_nhwc: ldcol={} < KH*KW*C={}", a.ldcol, a.g.KH * a.g.KW * a.g.C);
}

// ---- dispatch lists ----
namespace {
constexpr std::array<DwF32List::Impl, 2> kDwF32Impls{{
    {"dwconv_f32_c16__avx512", Isa::avx512, nullptr, &dwconv_f32_c16__avx512},
    {"dwconv_f32_ref", Isa::ref, nullptr, &dwconv_f32_ref},
}};
constexpr std::array<DwF16List::Impl, 2> kDwF16Impls{{
    {"dwconv_f16_c16__avx512", Isa::avx512, nullptr, &dwconv_f16_c16__avx512},
    {"dwconv_f16_ref", Isa::ref, nullptr, &dwconv_f16_ref},
}};
constexpr std::array<DwQ8List::Impl, 2> kDwQ8Impls{{
    {"dwconv_qu8_qc8w_c16__avx512vnni", Isa::avx512_vnni, nullptr, &dwconv_qu8_qc8w_c16__avx512vnni},
    {"dwconv_qu8_qc8w_ref", Isa::ref, nullptr, &dwconv_qu8_qc8w_ref},
}};
constexpr std::array<MaxPoolList::Impl, 2> kMaxPoolImpls{{
    {"maxpool_nhwc__avx512", Isa::avx512, nullptr, &maxpool_nhwc__avx512},
    {"maxpool_nhwc_ref", Isa::ref, nullptr, &maxpool_nhwc_ref},
}};
constexpr std::array<GapList::Impl, 2> kGapImpls{{
    {"global_avgpool_nhwc__avx512", Isa::avx512, nullptr, &global_avgpool_nhwc__avx512},
    {"global_avgpool_nhwc_ref", Isa::ref, nullptr, &global_avgpool_nhwc_ref},
}};
constexpr std::array<CvtList::Impl, 3> kQuantImpls{{
    {"quantize_f32_u8__avx512", Isa::avx512, nullptr, &quantize_f32_u8__avx512},
    {"quantize_f32_u8__avx2", Isa::avx2, nullptr, &quantize_f32_u8__avx2},
    {"quantize_f32_u8_ref", Isa::ref, nullptr, &quantize_f32_u8_ref},
}};
constexpr std::array<CvtList::Impl, 3> kDequantImpls{{
    {"dequantize_u8_f32__avx512", Isa::avx512, nullptr, &dequantize_u8_f32__avx512},
    {"dequantize_u8_f32__avx2", Isa::avx2, nullptr, &dequantize_u8_f32__avx2},
    {"dequantize_u8_f32_ref", Isa::ref, nullptr, &dequantize_u8_f32_ref},
}};
constexpr std::array<CvtList::Impl, 3> kRequantImpls{{
    {"requantize_u8_u8__avx512", Isa::avx512, nullptr, &requantize_u8_u8__avx512},
    {"requantize_u8_u8__avx2", Isa::avx2, nullptr, &requantize_u8_u8__avx2},
    {"requantize_u8_u8_ref", Isa::ref, nullptr, &requantize_u8_u8_ref},
}};
constexpr std::array<CvtList::Impl, 3> kF32F16Impls{{
    {"convert_f32_f16__avx512", Isa::avx512, nullptr, &convert_f32_f16__avx512},
    {"convert_f32_f16__avx2", Isa::avx2, nullptr, &convert_f32_f16__avx2},
    {"convert_f32_f16_ref", Isa::ref, nullptr, &convert_f32_f16_ref},
}};
constexpr std::array<CvtList::Impl, 3> kF16F32Impls{{
    {"convert_f16_f32__avx512", Isa::avx512, nullptr, &convert_f16_f32__avx512},
    {"convert_f16_f32__avx2", Isa::avx2, nullptr, &convert_f16_f32__avx2},
    {"convert_f16_f32_ref", Isa::ref, nullptr, &convert_f16_f32_ref},
}};
constexpr std::array<TransposeList::Impl, 1> kTransposeImpls{{
    {"nchw_to_nhwc_f32_ref", Isa::ref, nullptr, &nchw_to_nhwc_f32_ref},
}};
constexpr std::array<AddList::Impl, 3> kAddImpls{{
    {"add_clamp_nhwc__avx512", Isa::avx512, nullptr, &add_clamp_nhwc__avx512},
    {"add_clamp_nhwc__avx2", Isa::avx2, nullptr, &add_clamp_nhwc__avx2},
    {"add_clamp_nhwc_ref", Isa::ref, nullptr, &add_clamp_nhwc_ref},
}};
constexpr std::array<Im2colList::Impl, 2> kIm2colImpls{{
    {"im2col_nhwc__avx2", Isa::avx2, nullptr, &im2col_nhwc__avx2},
    {"im2col_nhwc_ref", Isa::ref, nullptr, &im2col_nhwc_ref},
}};
}  // namespace

const DwF32List& dwconv_f32_list() {
  static const DwF32List list("dwconv_f32", kDwF32Impls);
  return list;
}

const DwF16List& dwconv_f16_list() {
  static const DwF16List list("dwconv_f16", kDwF16Impls);
  return list;
}
const DwQ8List& dwconv_qu8_qc8w_list() {
  static const DwQ8List list("dwconv_qu8_qc8w", kDwQ8Impls);
  return list;
}
const MaxPoolList& maxpool_nhwc_list() {
  static const MaxPoolList list("maxpool_nhwc", kMaxPoolImpls);
  return list;
}
const GapList& global_avgpool_nhwc_list() {
  static const GapList list("global_avgpool_nhwc", kGapImpls);
  return list;
}
const CvtList& quantize_f32_u8_list() {
  static const CvtList list("quantize_f32_u8", kQuantImpls);
  return list;
}
const CvtList& dequantize_u8_f32_list() {
  static const CvtList list("dequantize_u8_f32", kDequantImpls);
  return list;
}
const CvtList& requantize_u8_u8_list() {
  static const CvtList list("requantize_u8_u8", kRequantImpls);
  return list;
}
const CvtList& convert_f32_f16_list() {
  static const CvtList list("convert_f32_f16", kF32F16Impls);
  return list;
}
const CvtList& convert_f16_f32_list() {
  static const CvtList list("convert_f16_f32", kF16F32Impls);
  return list;
}
const TransposeList& nchw_to_nhwc_f32_list() {
  static const TransposeList list("nchw_to_nhwc_f32", kTransposeImpls);
  return list;
}
const AddList& add_clamp_nhwc_list() {
  static const AddList list("add_clamp_nhwc", kAddImpls);
  return list;
}
const Im2colList& im2col_nhwc_list() {
  static const Im2colList list("im2col_nhwc", kIm2colImpls);
  return list;
}

// ---- entry points ----
void dwconv_f32(const DwF32Args& a) {
  check_dw_args(a);
  dwconv_f32_list().select(a).fn(a);
}
void dwconv_f16(const DwF16Args& a) {
  check_dw_args(a);
  dwconv_f16_list().select(a).fn(a);
}
void dwconv_qu8_qc8w(const DwQ8Args& a) {
  check_dw_args(a);
  dwconv_qu8_qc8w_list().select(a).fn(a);
}
void maxpool_nhwc(const MaxPoolArgs& a) {
  check_maxpool_args(a);
  maxpool_nhwc_list().select(a).fn(a);
}
void global_avgpool_nhwc(const GapArgs& a) {
  check_gap_args(a);
  global_avgpool_nhwc_list().select(a).fn(a);
}
void nchw_to_nhwc_f32(const TransposeArgs& a) {
  check_transpose_args(a);
  nchw_to_nhwc_f32_list().select(a).fn(a);
}
void add_clamp_nhwc(const AddArgs& a) {
  check_add_args(a);
  add_clamp_nhwc_list().select(a).fn(a);
}

void im2col_nhwc(const void* x, int64_t elem_bytes, const ConvGeom& g, const void* pad_value, void* col,
                 int64_t ldcol) {
  Im2colArgs a{x, elem_bytes, g, pad_value, col, ldcol == 0 ? g.KH * g.KW * g.C : ldcol};
  check_im2col_args(a);
  im2col_nhwc_list().select(a).fn(a);
}

namespace {
void run_cvt(const CvtList& list, const CvtArgs& a) {
  check_cvt_args(a, list.op());
  if (a.n > 0) list.select(a).fn(a);
}
}  // namespace

void quantize_f32_u8(const float* x, int64_t n, float scale, int32_t zp, uint8_t* q) {
  CvtArgs a;
  a.n = n, a.x = x, a.y = q, a.scale = scale, a.zp = zp;
  run_cvt(quantize_f32_u8_list(), a);
}
void dequantize_u8_f32(const uint8_t* q, int64_t n, float scale, int32_t zp, float* y) {
  CvtArgs a;
  a.n = n, a.x = q, a.y = y, a.scale = scale, a.zp = zp;
  run_cvt(dequantize_u8_f32_list(), a);
}
void requantize_u8_u8(const uint8_t* q, int64_t n, float scale_in, int32_t zp_in, float scale_out, int32_t zp_out,
                      uint8_t* y) {
  CvtArgs a;
  a.n = n, a.x = q, a.y = y, a.scale = scale_in, a.zp = zp_in, a.scale_out = scale_out, a.zp_out = zp_out;
  run_cvt(requantize_u8_u8_list(), a);
}
void convert_f32_f16(const float* x, int64_t n, uint16_t* y) {
  CvtArgs a;
  a.n = n, a.x = x, a.y = y;
  run_cvt(convert_f32_f16_list(), a);
}
void convert_f16_f32(const uint16_t* x, int64_t n, float* y) {
  CvtArgs a;
  a.n = n, a.x = x, a.y = y;
  run_cvt(convert_f16_f32_list(), a);
}

}  // namespace mpq::kernels
