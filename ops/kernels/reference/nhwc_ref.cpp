// Reference NHWC kernels: plain loops performing exactly the ops documented in ops/kernels/nhwc.h, the
// oracles of every other implementation (the tests compare bit for bit, float depthwise included).
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "ops/kernels/nhwc.h"

namespace mpq::kernels {
namespace {

// Valid tap range [k0, k1) of a window starting at input coordinate i0 = o * stride - pad, size K, in [0, n).
inline void tap_range(int64_t i0, int64_t K, int64_t n, int64_t& k0, int64_t& k1) {
  k0 = i0 < 0 ? -i0 : 0;
  k1 = i0 + K > n ? n - i0 : K;
}

template <class PW, class Acc, class Tap, class Scale>
void dw_ref(const DwConvArgs<PW>& a, Tap tap, Scale scale_of) {
  const ConvGeom& g = a.g;
  for (int64_t oh = 0; oh < g.OH; ++oh)
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      const int64_t ih0 = oh * g.stride_h - g.pad_top, iw0 = ow * g.stride_w - g.pad_left;
      int64_t kh0, kh1, kw0, kw1;
      tap_range(ih0, g.KH, g.H, kh0, kh1);
      tap_range(iw0, g.KW, g.W, kw0, kw1);
      const int64_t m = oh * g.OW + ow;
      for (int64_t c = 0; c < g.C; ++c) {
        Acc acc = 0;
        for (int64_t kh = kh0; kh < kh1; ++kh)
          for (int64_t kw = kw0; kw < kw1; ++kw) {
            const int64_t xi = ((ih0 + kh) * g.W + (iw0 + kw)) * g.ldx + c;
            acc = tap(acc, xi, kh * g.KW + kw, c);
          }
        lowp_epilogue_scalar(a.ep, scale_of(c), float(acc), m, c, a.y, a.ldy);
      }
    }
}

}  // namespace

void dwconv_f32_ref(const DwF32Args& a) {
  check_dw_args(a);
  const auto* x = static_cast<const float*>(a.x);
  dw_ref<PackedDwF32, float>(
      a, [&](float acc, int64_t xi, int64_t t, int64_t c) { return std::fma(x[xi], a.w->at(t, c), acc); },
      [](int64_t) { return 1.0f; });
}

void dwconv_f16_ref(const DwF16Args& a) {
  check_dw_args(a);
  const auto* x = static_cast<const uint16_t*>(a.x);
  dw_ref<PackedDwF16, float>(
      a,
      [&](float acc, int64_t xi, int64_t t, int64_t c) {
        return std::fma(f16_to_f32(x[xi]), f16_to_f32(a.w->at(t, c)), acc);
      },
      [](int64_t) { return 1.0f; });
}

void dwconv_qu8_qc8w_ref(const DwQ8Args& a) {
  check_dw_args(a);
  const auto* x = static_cast<const uint8_t*>(a.x);
  dw_ref<PackedDwQ8, int32_t>(
      a,
      [&](int32_t acc, int64_t xi, int64_t t, int64_t c) {
        return acc + (int32_t(x[xi]) - a.za) * int32_t(a.w->at(t, c));
      },
      [&](int64_t c) { return a.sa * a.w->scale[size_t(c)]; });
}

// ---- im2col ----
void im2col_nhwc_ref(const Im2colArgs& a) {
  check_im2col_args(a);
  const ConvGeom& g = a.g;
  const size_t eb = size_t(a.elem_bytes);
  const auto* x = static_cast<const uint8_t*>(a.x);
  auto* col = static_cast<uint8_t*>(a.col);
  for (int64_t oh = 0; oh < g.OH; ++oh)
    for (int64_t ow = 0; ow < g.OW; ++ow)
      for (int64_t kh = 0; kh < g.KH; ++kh)
        for (int64_t kw = 0; kw < g.KW; ++kw)
          for (int64_t c = 0; c < g.C; ++c) {
            const int64_t ih = oh * g.stride_h - g.pad_top + kh, iw = ow * g.stride_w - g.pad_left + kw;
            const bool inside = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
            uint8_t* dst = col + size_t((oh * g.OW + ow) * a.ldcol + (kh * g.KW + kw) * g.C + c) * eb;
            const void* src = inside ? x + size_t((ih * g.W + iw) * g.ldx + c) * eb : a.pad_value;
            std::memcpy(dst, src, eb);
          }
}

// ---- pooling ----
void maxpool_nhwc_ref(const MaxPoolArgs& a) {
  check_maxpool_args(a);
  const ConvGeom& g = a.g;
  auto load = [&](int64_t i) -> float {
    switch (a.dt) {
      case DType::f16:
        return f16_to_f32(static_cast<const uint16_t*>(a.x)[i]);
      case DType::u8:
        return float(static_cast<const uint8_t*>(a.x)[i]);
      default:
        return static_cast<const float*>(a.x)[i];
    }
  };
  for (int64_t oh = 0; oh < g.OH; ++oh)
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      const int64_t ih0 = oh * g.stride_h - g.pad_top, iw0 = ow * g.stride_w - g.pad_left;
      int64_t kh0, kh1, kw0, kw1;
      tap_range(ih0, g.KH, g.H, kh0, kh1);
      tap_range(iw0, g.KW, g.W, kw0, kw1);
      const int64_t o = (oh * g.OW + ow) * a.ldy;
      for (int64_t c = 0; c < g.C; ++c) {
        float m = load(((ih0 + kh0) * g.W + (iw0 + kw0)) * g.ldx + c);
        for (int64_t kh = kh0; kh < kh1; ++kh)
          for (int64_t kw = kw0; kw < kw1; ++kw) {
            const float v = load(((ih0 + kh) * g.W + (iw0 + kw)) * g.ldx + c);
            m = v > m ? v : m;
          }
        switch (a.dt) {
          case DType::f16:
            static_cast<uint16_t*>(a.y)[o + c] = f32_to_f16(m);
            break;
          case DType::u8:
            static_cast<uint8_t*>(a.y)[o + c] = uint8_t(m);
            break;
          default:
            static_cast<float*>(a.y)[o + c] = m;
        }
      }
    }
}

void global_avgpool_nhwc_ref(const GapArgs& a) {
  check_gap_args(a);
  for (int64_t c = 0; c < a.C; ++c) {
    if (a.dt == DType::u8) {
      const auto* q = static_cast<const uint8_t*>(a.x);
      int32_t acc = 0;
      for (int64_t p = 0; p < a.HW; ++p) acc += int32_t(q[p * a.ldx + c]) - a.zp;
      a.y[c] = (float(acc) * a.scale) / float(a.HW);
    } else {
      float s = 0.0f;
      for (int64_t p = 0; p < a.HW; ++p)
        s += a.dt == DType::f16 ? f16_to_f32(static_cast<const uint16_t*>(a.x)[p * a.ldx + c])
                                : static_cast<const float*>(a.x)[p * a.ldx + c];
      a.y[c] = s / float(a.HW);
    }
  }
}

// ---- conversions ----
uint8_t quantize_value(float x, float scale, int32_t zp) {
  const float t = std::nearbyint(x / scale) + float(zp);
  if (!(t > 0.0f)) return 0;  // also NaN
  return t < 255.0f ? uint8_t(t) : uint8_t(255);
}

void quantize_f32_u8_ref(const CvtArgs& a) {
  check_cvt_args(a, "quantize_f32_u8");
  const auto* x = static_cast<const float*>(a.x);
  auto* y = static_cast<uint8_t*>(a.y);
  for (int64_t i = 0; i < a.n; ++i) y[i] = quantize_value(x[i], a.scale, a.zp);
}

void dequantize_u8_f32_ref(const CvtArgs& a) {
  check_cvt_args(a, "dequantize_u8_f32");
  const auto* q = static_cast<const uint8_t*>(a.x);
  auto* y = static_cast<float*>(a.y);
  for (int64_t i = 0; i < a.n; ++i) y[i] = dequantize_value(q[i], a.scale, a.zp);
}

void requantize_u8_u8_ref(const CvtArgs& a) {
  check_cvt_args(a, "requantize_u8_u8");
  const auto* q = static_cast<const uint8_t*>(a.x);
  auto* y = static_cast<uint8_t*>(a.y);
  for (int64_t i = 0; i < a.n; ++i) y[i] = quantize_value(dequantize_value(q[i], a.scale, a.zp), a.scale_out, a.zp_out);
}

void convert_f32_f16_ref(const CvtArgs& a) {
  check_cvt_args(a, "convert_f32_f16");
  const auto* x = static_cast<const float*>(a.x);
  auto* y = static_cast<uint16_t*>(a.y);
  for (int64_t i = 0; i < a.n; ++i) y[i] = f32_to_f16(x[i]);
}

void convert_f16_f32_ref(const CvtArgs& a) {
  check_cvt_args(a, "convert_f16_f32");
  const auto* x = static_cast<const uint16_t*>(a.x);
  auto* y = static_cast<float*>(a.y);
  for (int64_t i = 0; i < a.n; ++i) y[i] = f16_to_f32(x[i]);
}

void nchw_to_nhwc_f32_ref(const TransposeArgs& a) {
  check_transpose_args(a);
  for (int64_t c = 0; c < a.C; ++c)
    for (int64_t h = 0; h < a.H; ++h)
      for (int64_t w = 0; w < a.W; ++w) a.y[(h * a.W + w) * a.ldy + c] = a.x[(c * a.H + h) * a.W + w];
}

void add_clamp_nhwc_ref(const AddArgs& a) {
  check_add_args(a);
  for (int64_t r = 0; r < a.rows; ++r)
    for (int64_t c = 0; c < a.C; ++c) {
      float s;
      if (a.dt == DType::f16)
        s = f16_to_f32(static_cast<const uint16_t*>(a.a)[r * a.lda + c]) +
            f16_to_f32(static_cast<const uint16_t*>(a.b)[r * a.ldb + c]);
      else
        s = static_cast<const float*>(a.a)[r * a.lda + c] + static_cast<const float*>(a.b)[r * a.ldb + c];
      s = s > a.lo ? s : a.lo;
      s = s < a.hi ? s : a.hi;
      if (a.dt == DType::f16)
        static_cast<uint16_t*>(a.y)[r * a.ldy + c] = f32_to_f16(s);
      else
        static_cast<float*>(a.y)[r * a.ldy + c] = s;
    }
}

}  // namespace mpq::kernels
