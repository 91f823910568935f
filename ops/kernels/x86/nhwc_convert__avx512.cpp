// AVX-512 element-wise NHWC kernels: quantize / dequantize / requantize, f32 <-> f16, residual add with
// clamp. Each performs the reference's ops (ops/kernels/nhwc.h) lane-wise, so outputs are bit-exact:
//   quantize   t = x / s (vdivps, as fake_quant_act; not a multiply by 1/s), vrndscaleps RNE (== nearbyint
//              under the default MXCSR), t + float(zp), max(t, 0) (maxps returns 0 for NaN, as the
//              reference), min(t, 255), exact conversion of the integral value to u8.
//   dequantize float(q - zp) * s.   requantize: 256-entry table built with the reference formulas.
//   f16 -> f32 vcvtph2ps, except that it quiets signalling NaNs, which core f16_to_f32 keeps: those lanes
//              are rebuilt bit by bit.   f32 -> f16 vcvtps2ph RNE (same NaN quieting as f32_to_f16).
// Large arrays are split over the OpenMP threads in 64-element-aligned chunks.
// GCC 12 reports the intentionally undefined `__Y` operand inside its own AVX-512 intrinsic headers as
// "maybe uninitialized" (as ops/kernels/x86/gemm_lowp_driver.h notes): false positives, silenced for this TU.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "ops/kernels/nhwc.h"

namespace mpq::kernels {
namespace {

// fn(i0, i1) over [0, n), in parallel when n is large enough to pay for the fork (memory-bound loops).
template <class Fn>
void chunked(int64_t n, Fn fn) {
  const int nt = (omp_in_parallel() || n < (int64_t(1) << 16)) ? 1 : omp_get_max_threads();
  if (nt <= 1) {
    fn(int64_t(0), n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), k = omp_get_num_threads();
    const int64_t i0 = std::min(n, (n * t / k) / 64 * 64),
                  i1 = t + 1 == k ? n : std::min(n, (n * (t + 1) / k) / 64 * 64);
    fn(i0, i1);
  }
}

inline __mmask16 tail_mask(int64_t left) { return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1u); }

// Elements of [i0, i1) before the f32 stream f32s (input or output) reaches a 64-byte boundary: the loops
// do them as a masked head, because 64-byte accesses that split cache lines cost ~30 % on a 1.2M-element
// dequantize (bench/bench_nhwc.cpp, misc/*).
inline int64_t head16(int64_t i0, int64_t i1, const void* f32s) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(f32s) + uintptr_t(i0) * 4;
  return addr % 4 == 0 ? std::min<int64_t>(i1 - i0, int64_t((64 - addr % 64) % 64 / 4)) : 0;
}

inline __m512i quantize16(__m512 x, __m512 s, __m512 zp) {
  __m512 t = _mm512_div_ps(x, s);
  t = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  t = _mm512_add_ps(t, zp);
  t = _mm512_max_ps(t, _mm512_setzero_ps());  // t > 0 ? t : 0 (NaN -> 0)
  t = _mm512_min_ps(t, _mm512_set1_ps(255.0f));
  return _mm512_cvtps_epi32(t);  // integral already: exact
}

// core f16_to_f32 on 16 halves (widened to dwords): vcvtph2ps, then signalling NaNs restored.
inline __m512 f16_to_f32_16(__m256i h) {
  const __m512 f = _mm512_cvtph_ps(h);
  const __m512i w = _mm512_cvtepu16_epi32(h);
  const __m512i man = _mm512_and_si512(w, _mm512_set1_epi32(0x3ff));
  const __mmask16 exp31 =
      _mm512_cmpeq_epi32_mask(_mm512_and_si512(w, _mm512_set1_epi32(0x7c00)), _mm512_set1_epi32(0x7c00));
  const __mmask16 snan =
      exp31 & _mm512_test_epi32_mask(man, man) & _mm512_testn_epi32_mask(w, _mm512_set1_epi32(0x200));
  if (!snan) return f;
  const __m512i bits =
      _mm512_or_si512(_mm512_or_si512(_mm512_slli_epi32(_mm512_and_si512(w, _mm512_set1_epi32(0x8000)), 16),
                                      _mm512_set1_epi32(0x7f800000)),
                      _mm512_slli_epi32(man, 13));
  return _mm512_mask_blend_ps(snan, f, _mm512_castsi512_ps(bits));
}

}  // namespace

void quantize_f32_u8__avx512(const CvtArgs& a) {
  check_cvt_args(a, "quantize_f32_u8");
  const auto* x = static_cast<const float*>(a.x);
  auto* y = static_cast<uint8_t*>(a.y);
  chunked(a.n, [&](int64_t i0, int64_t i1) {
    auto* const __restrict xl = x;
    auto* const __restrict yl = y;
    // locals, not captures: stores through y may alias captured __m512 objects (may_alias) and force
    // a reload of every captured value per iteration
    const __m512 s = _mm512_set1_ps(a.scale), zp = _mm512_set1_ps(float(a.zp));
    int64_t i = i0;
    if (const int64_t h = head16(i0, i1, x); h > 0) {
      const __mmask16 m = tail_mask(h);
      _mm512_mask_cvtepi32_storeu_epi8(yl + i, m, quantize16(_mm512_maskz_loadu_ps(m, xl + i), s, zp));
      i += h;
    }
    for (; i + 16 <= i1; i += 16)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(yl + i),
                       _mm512_cvtepi32_epi8(quantize16(_mm512_loadu_ps(xl + i), s, zp)));
    if (i < i1) {
      const __mmask16 m = tail_mask(i1 - i);
      _mm512_mask_cvtepi32_storeu_epi8(yl + i, m, quantize16(_mm512_maskz_loadu_ps(m, xl + i), s, zp));
    }
  });
}

void dequantize_u8_f32__avx512(const CvtArgs& a) {
  check_cvt_args(a, "dequantize_u8_f32");
  const auto* q = static_cast<const uint8_t*>(a.x);
  auto* y = static_cast<float*>(a.y);
  chunked(a.n, [&](int64_t i0, int64_t i1) {
    auto* const __restrict yl = y;
    auto* const __restrict ql = q;
    const __m512 s = _mm512_set1_ps(a.scale);  // locals: see quantize_f32_u8__avx512
    const __m512i zp = _mm512_set1_epi32(a.zp);
    auto deq = [s, zp](__m128i b) {
      return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(b), zp)), s);
    };
    int64_t i = i0;
    if (const int64_t h = head16(i0, i1, y); h > 0) {
      const __mmask16 m = tail_mask(h);
      _mm512_mask_storeu_ps(yl + i, m, deq(_mm_maskz_loadu_epi8(m, ql + i)));
      i += h;
    }
    for (; i + 16 <= i1; i += 16)
      _mm512_storeu_ps(yl + i, deq(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ql + i))));
    if (i < i1) {
      const __mmask16 m = tail_mask(i1 - i);
      _mm512_mask_storeu_ps(yl + i, m, deq(_mm_maskz_loadu_epi8(m, ql + i)));
    }
  });
}

void requantize_u8_u8__avx512(const CvtArgs& a) {
  check_cvt_args(a, "requantize_u8_u8");
  alignas(64) uint8_t lut[256];  // lut[q] = quantize(dequantize(q)) with the reference formulas
  for (int q = 0; q < 256; ++q)
    lut[q] = quantize_value(dequantize_value(uint8_t(q), a.scale, a.zp), a.scale_out, a.zp_out);
  const auto* q = static_cast<const uint8_t*>(a.x);
  auto* y = static_cast<uint8_t*>(a.y);
  // 16 bytes at a time: the bytes widened to dword indices gather from the table widened to dwords
  // (lut32), so every gather lane reads 4 bytes inside it.
  alignas(64) int32_t lut32[256];  // [256] lut widened to dwords
  for (int k = 0; k < 256; ++k) lut32[k] = lut[k];
  chunked(a.n, [&](int64_t i0, int64_t i1) {
    auto* const __restrict yl = y;
    auto* const __restrict ql = q;
    int64_t i = i0;
    for (; i + 16 <= i1; i += 16) {
      const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ql + i)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(yl + i), _mm512_cvtepi32_epi8(_mm512_i32gather_epi32(idx, lut32, 4)));
    }
    for (; i < i1; ++i) yl[i] = lut[ql[i]];
  });
}

void convert_f32_f16__avx512(const CvtArgs& a) {
  check_cvt_args(a, "convert_f32_f16");
  const auto* x = static_cast<const float*>(a.x);
  auto* y = static_cast<uint16_t*>(a.y);
  constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  chunked(a.n, [&](int64_t i0, int64_t i1) {
    auto* const __restrict xl = x;
    auto* const __restrict yl = y;
    int64_t i = i0;
    if (const int64_t h = head16(i0, i1, x); h > 0) {
      const __mmask16 m = tail_mask(h);
      _mm256_mask_storeu_epi16(yl + i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, xl + i), kRne));
      i += h;
    }
    for (; i + 16 <= i1; i += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(yl + i), _mm512_cvtps_ph(_mm512_loadu_ps(xl + i), kRne));
    if (i < i1) {
      const __mmask16 m = tail_mask(i1 - i);
      _mm256_mask_storeu_epi16(yl + i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, xl + i), kRne));
    }
  });
}

void convert_f16_f32__avx512(const CvtArgs& a) {
  check_cvt_args(a, "convert_f16_f32");
  const auto* x = static_cast<const uint16_t*>(a.x);
  auto* y = static_cast<float*>(a.y);
  chunked(a.n, [&](int64_t i0, int64_t i1) {
    auto* const __restrict xl = x;
    auto* const __restrict yl = y;
    int64_t i = i0;
    if (const int64_t h = head16(i0, i1, y); h > 0) {
      const __mmask16 m = tail_mask(h);
      _mm512_mask_storeu_ps(yl + i, m, f16_to_f32_16(_mm256_maskz_loadu_epi16(m, xl + i)));
      i += h;
    }
    for (; i + 16 <= i1; i += 16)
      _mm512_storeu_ps(yl + i, f16_to_f32_16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xl + i))));
    if (i < i1) {
      const __mmask16 m = tail_mask(i1 - i);
      _mm512_mask_storeu_ps(yl + i, m, f16_to_f32_16(_mm256_maskz_loadu_epi16(m, xl + i)));
    }
  });
}

// y = min(max(a + b, lo), hi) per row of C channels; f16: widened exactly, sum rounded RNE to f16.
void add_clamp_nhwc__avx512(const AddArgs& a) {
  check_add_args(a);
  const __m512 lo = _mm512_set1_ps(a.lo), hi = _mm512_set1_ps(a.hi);
  const bool f16 = a.dt == DType::f16;
  auto row = [&](int64_t r) {
    for (int64_t c = 0; c < a.C; c += 16) {
      const __mmask16 m = tail_mask(a.C - c);
      __m512 s;
      if (f16) {
        const auto* pa = static_cast<const uint16_t*>(a.a) + r * a.lda + c;
        const auto* pb = static_cast<const uint16_t*>(a.b) + r * a.ldb + c;
        s = _mm512_add_ps(f16_to_f32_16(_mm256_maskz_loadu_epi16(m, pa)),
                          f16_to_f32_16(_mm256_maskz_loadu_epi16(m, pb)));
      } else {
        s = _mm512_add_ps(_mm512_maskz_loadu_ps(m, static_cast<const float*>(a.a) + r * a.lda + c),
                          _mm512_maskz_loadu_ps(m, static_cast<const float*>(a.b) + r * a.ldb + c));
      }
      s = _mm512_min_ps(_mm512_max_ps(s, lo), hi);
      if (f16)
        _mm256_mask_storeu_epi16(static_cast<uint16_t*>(a.y) + r * a.ldy + c, m,
                                 _mm512_cvtps_ph(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      else
        _mm512_mask_storeu_ps(static_cast<float*>(a.y) + r * a.ldy + c, m, s);
    }
  };
  const int nt = (omp_in_parallel() || a.rows * a.C < (int64_t(1) << 16)) ? 1 : omp_get_max_threads();
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < a.rows; ++r) row(r);
}

}  // namespace mpq::kernels
