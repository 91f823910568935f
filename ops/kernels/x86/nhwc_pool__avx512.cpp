// AVX-512 NHWC pooling, bit-exact with the references (ops/kernels/nhwc.h):
//   max pool: per output pixel and channel block, running max over the valid taps in (kh, kw) order as
//     m = max(v, m) (maxps: v > m ? v : m, the reference's comparison); f32 and f16 in 16 f32 lanes (f16
//     widened with vcvtph2ps and narrowed back exactly), u8 in 64 byte lanes (vpmaxub).
//   global average pool: per block of 16 channels, f32 sum over pixels in ascending order (int32 for u8),
//     then the reference's division / scale.
// Max pool rows are split over the OpenMP threads when the output is large (ResNet50's stem pool).
#include <immintrin.h>
#include <omp.h>

#include <algorithm>

#include "ops/kernels/nhwc.h"

namespace mpq::kernels {
namespace {

inline __mmask16 mask16(int64_t left) { return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1u); }
inline __mmask64 mask64(int64_t left) { return left >= 64 ? ~__mmask64(0) : (__mmask64(1) << left) - 1; }

// One output pixel: taps [kh0, kh1) x [kw0, kw1) starting at input element offset `base` (tap (kh0, kw0)).
template <class T>
void max_pixel(const MaxPoolArgs& a, const T* x, T* y, int64_t base, int64_t nkh, int64_t nkw) {
  const ConvGeom& g = a.g;
  const int64_t rstep = g.W * g.ldx;
  if constexpr (sizeof(T) == 1) {
    for (int64_t c = 0; c < g.C; c += 64) {
      const __mmask64 m = mask64(g.C - c);
      __m512i v = _mm512_maskz_loadu_epi8(m, x + base + c);
      for (int64_t i = 0; i < nkh; ++i)
        for (int64_t j = 0; j < nkw; ++j)
          v = _mm512_max_epu8(v, _mm512_maskz_loadu_epi8(m, x + base + i * rstep + j * g.ldx + c));
      _mm512_mask_storeu_epi8(y + c, m, v);
    }
  } else {
    for (int64_t c = 0; c < g.C; c += 16) {
      const __mmask16 m = mask16(g.C - c);
      auto load = [&](int64_t off) {
        if constexpr (sizeof(T) == 4)
          return _mm512_maskz_loadu_ps(m, x + off);
        else
          return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, x + off));
      };
      __m512 v = load(base + c);
      for (int64_t i = 0; i < nkh; ++i)
        for (int64_t j = 0; j < nkw; ++j) v = _mm512_max_ps(load(base + i * rstep + j * g.ldx + c), v);
      if constexpr (sizeof(T) == 4)
        _mm512_mask_storeu_ps(y + c, m, v);
      else
        _mm256_mask_storeu_epi16(y + c, m, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
  }
}

template <class T>
void maxpool_t(const MaxPoolArgs& a) {
  const ConvGeom& g = a.g;
  const T* x = static_cast<const T*>(a.x);
  T* y = static_cast<T*>(a.y);
  auto row = [&](int64_t oh) {
    const int64_t ih0 = oh * g.stride_h - g.pad_top;
    const int64_t kh0 = std::max<int64_t>(0, -ih0), kh1 = std::min<int64_t>(g.KH, g.H - ih0);
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      const int64_t iw0 = ow * g.stride_w - g.pad_left;
      const int64_t kw0 = std::max<int64_t>(0, -iw0), kw1 = std::min<int64_t>(g.KW, g.W - iw0);
      max_pixel<T>(a, x, y + (oh * g.OW + ow) * a.ldy, ((ih0 + kh0) * g.W + iw0 + kw0) * g.ldx, kh1 - kh0, kw1 - kw0);
    }
  };
  const int nt =
      (omp_in_parallel() || g.OH * g.OW * g.C * g.KH * g.KW < (int64_t(1) << 18)) ? 1 : omp_get_max_threads();
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t oh = 0; oh < g.OH; ++oh) row(oh);
}

}  // namespace

void maxpool_nhwc__avx512(const MaxPoolArgs& a) {
  check_maxpool_args(a);
  switch (a.dt) {
    case DType::u8:
      return maxpool_t<uint8_t>(a);
    case DType::f16:
      return maxpool_t<uint16_t>(a);
    default:
      return maxpool_t<float>(a);
  }
}

void global_avgpool_nhwc__avx512(const GapArgs& a) {
  check_gap_args(a);
  const __m512 hw = _mm512_set1_ps(float(a.HW));
  for (int64_t c = 0; c < a.C; c += 16) {
    const __mmask16 m = mask16(a.C - c);
    __m512 r;
    if (a.dt == DType::u8) {
      const auto* q = static_cast<const uint8_t*>(a.x) + c;
      const __m512i zp = _mm512_set1_epi32(a.zp);
      __m512i acc = _mm512_setzero_si512();
      for (int64_t p = 0; p < a.HW; ++p)
        acc = _mm512_add_epi32(acc, _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, q + p * a.ldx)), zp));
      r = _mm512_div_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(a.scale)), hw);
    } else {
      __m512 s = _mm512_setzero_ps();
      if (a.dt == DType::f16) {
        const auto* h = static_cast<const uint16_t*>(a.x) + c;
        for (int64_t p = 0; p < a.HW; ++p)
          s = _mm512_add_ps(s, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, h + p * a.ldx)));
      } else {
        const auto* f = static_cast<const float*>(a.x) + c;
        for (int64_t p = 0; p < a.HW; ++p) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(m, f + p * a.ldx));
      }
      r = _mm512_div_ps(s, hw);
    }
    _mm512_mask_storeu_ps(a.y + c, m, r);
  }
}

}  // namespace mpq::kernels
