// Shared AVX-512 driver of the NHWC depthwise convolutions (f32 / f16 / int8), included by each
// dwconv_*__avx512*.cpp. Anonymous namespace on purpose: every including TU gets its own copy compiled
// with its own ISA flags (as ops/x86/gemm_lowp_driver.h, whose Epi epilogue it reuses).
//
// Work split: items = (output row oh, block of 16 channels), numbered row-major, contiguous near-equal
// ranges per OpenMP thread. Within a row a thread walks column strips OUTSIDE and its channel blocks
// INSIDE, so a strip's input (KH rows x strip width x C) is read from L2 once and then hit in L1 by every
// channel block, instead of re-streaming whole input rows once per channel block.
//   strips: left border pixels (window leaves the image), interior tiles of 8 / 4 / 1 pixels, right
//   border pixels; rows of taps outside the image are skipped for the whole output row ([kh0, kh1)).
//   per (strip, channel block): 3x3 weights -> 9 registers (reloaded from L1 per strip: 9 loads per 72
//   multiply-adds), P accumulators, every pixel's taps in (kh, kw) ascending order -- the reference's
//   order, so the float paths are bit-exact with it -- then Epi::store16s (the shared LowpEpilogue).
//   Other kernel sizes (not used by the models) take a runtime-K path with weights loaded per tap.
// Channel tail (C % 16): masked loads and stores; the packed weights are padded to Cp (multiple of 32),
// so weight loads never need a mask.
//
// Ops policy (one per dtype):
//   using Args, Acc (accumulator vector), WVec (widened weights), Elem (input element);
//   static WVec load_w(const Args&, int64_t t, int64_t c0);      // tap t, channels c0..c0+15
//   static Acc start(const Args&, WVec wsum);                    // accumulator before the taps, given the
//   static WVec wadd(WVec, WVec);                                //   sum of the window's valid weights
//   static constexpr bool kWsum;                                 // start() needs wsum (int8 zero point)
//   template <bool Full> static Acc mac(Acc, const Elem* x, __mmask16, WVec);   // one tap
//   static __m512 pre_scale(Acc); static __m512 scale(const Args&, const Epi&, int64_t c0);
//   static float epi_sa(const Args&);
#pragma once
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#include <omp.h>

#include <algorithm>

#include "ops/kernels_nhwc.h"
#include "ops/x86/gemm_lowp_driver.h"

namespace mpq::kernels {
namespace {

// Epi::store16s with plain (unmasked) stores and residual loads for full 16-channel blocks: masked
// 512-bit stores are far slower than plain ones on Zen 4 (measured with bench/bench_nhwc.cpp: 7x7x960
// depthwise f32 1.9x slower with masked stores). Same f32 op sequence as Epi::store16s.
template <bool Full>
inline void dw_store16(const Epi& e, __m512 f, __m512 sc, __m512 b, int64_t m, int64_t n, __mmask16 mask, void* C,
                       int64_t ldc) {
  if constexpr (!Full) {
    e.store16s(f, sc, b, m, n, mask, C, ldc);
  } else {
    const LowpEpilogue& ep = e.ep;
    __m512 y = _mm512_fmadd_ps(f, sc, b);
    if (ep.residual) {
      if (ep.residual_u8) {
        const __m128i r8 = _mm_loadu_si128(
            reinterpret_cast<const __m128i*>(static_cast<const uint8_t*>(ep.residual) + m * ep.ld_res + n));
        const __m512i r = _mm512_sub_epi32(_mm512_cvtepu8_epi32(r8), e.res_zp);
        y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(r), e.res_scale, y);
      } else {
        y = _mm512_add_ps(y, _mm512_loadu_ps(static_cast<const float*>(ep.residual) + m * ep.ld_res + n));
      }
    }
    if (e.clamp) {
      y = _mm512_max_ps(y, e.lo);
      y = _mm512_min_ps(y, e.hi);
    }
    switch (ep.out) {
      case LowpOut::f32:
        _mm512_storeu_ps(static_cast<float*>(C) + m * ldc + n, y);
        break;
      case LowpOut::f16:
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<uint16_t*>(C) + m * ldc + n),
                            _mm512_cvtps_ph(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        break;
      case LowpOut::u8: {
        __m512 t = _mm512_mul_ps(y, e.inv_os);
        t = _mm512_add_ps(t, e.zp_f);
        t = _mm512_max_ps(t, _mm512_setzero_ps());
        t = _mm512_min_ps(t, _mm512_set1_ps(255.0f));
        const __m128i q = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(t));  // RNE under the default MXCSR
        _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint8_t*>(C) + m * ldc + n), q);
        break;
      }
    }
  }
}

// Per output row: what every strip of the row shares.
template <class Ops>
struct DwRow {
  using Args = typename Ops::Args;
  using Elem = typename Ops::Elem;
  const Args& a;
  const Epi& e;
  const Elem* x;  // input [H, W, ldx]
  int64_t oh, ih0, kh0, kh1;
};

// Channel block c0 of pixels [ow0, ow0 + P) (P == 1 with Border: one pixel whose window may leave the
// image left / right). KT = 3: 3x3 weights in registers; KT = 0: any kernel, weights loaded per tap.
template <class Ops, int KT, int P, bool Full, bool Border>
void dw_tile(const DwRow<Ops>& r, int64_t c0, __mmask16 mask, int64_t ow0) {
  using Acc = typename Ops::Acc;
  using WVec = typename Ops::WVec;
  const auto& a = r.a;
  const ConvGeom& g = a.g;
  const int64_t ldx = g.ldx, step = g.stride_w * ldx;
  const int64_t iw0 = ow0 * g.stride_w - g.pad_left;
  // valid kw range: all for interior tiles; clipped for a border pixel
  const int64_t kw0 = Border ? std::max<int64_t>(0, -iw0) : 0;
  const int64_t kw1 = Border ? std::min<int64_t>(g.KW, g.W - iw0) : g.KW;
  Acc acc[P];
  if constexpr (KT > 0) {
    WVec wr[KT * KT];
#pragma GCC unroll 9
    for (int t = 0; t < KT * KT; ++t) wr[t] = Ops::load_w(a, t, c0);
    Acc start;
    if constexpr (Ops::kWsum) {
      WVec ws = _mm512_setzero_si512();
#pragma GCC unroll 3
      for (int kh = 0; kh < KT; ++kh)
#pragma GCC unroll 3
        for (int kw = 0; kw < KT; ++kw)
          if (kh >= r.kh0 && kh < r.kh1 && kw >= kw0 && kw < kw1) ws = Ops::wadd(ws, wr[kh * KT + kw]);
      start = Ops::start(a, ws);
    } else {
      start = Ops::start(a, wr[0]);
    }
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) acc[p] = start;
#pragma GCC unroll 3
    for (int kh = 0; kh < KT; ++kh) {
      if (kh < r.kh0 || kh >= r.kh1) continue;
      // element offset of tap (kh, 0) of pixel ow0 (negative left of the image: only valid taps are loaded)
      const int64_t off = ((r.ih0 + kh) * g.W + iw0) * ldx + c0;
#pragma GCC unroll 8
      for (int p = 0; p < P; ++p)
#pragma GCC unroll 3
        for (int kw = 0; kw < KT; ++kw)
          if (!Border || (kw >= kw0 && kw < kw1))
            acc[p] = Ops::template mac<Full>(acc[p], r.x + (off + p * step + kw * ldx), mask, wr[kh * KT + kw]);
    }
  } else {
    WVec ws = Ops::load_w(a, 0, c0);
    if constexpr (Ops::kWsum) {
      ws = _mm512_setzero_si512();
      for (int64_t kh = r.kh0; kh < r.kh1; ++kh)
        for (int64_t kw = kw0; kw < kw1; ++kw) ws = Ops::wadd(ws, Ops::load_w(a, kh * g.KW + kw, c0));
    }
    const Acc start = Ops::start(a, ws);
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) acc[p] = start;
    for (int64_t kh = r.kh0; kh < r.kh1; ++kh)
      for (int64_t kw = kw0; kw < kw1; ++kw) {
        const WVec w = Ops::load_w(a, kh * g.KW + kw, c0);
        const int64_t off = ((r.ih0 + kh) * g.W + iw0 + kw) * ldx + c0;  // valid tap (kh, kw) of pixel ow0
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p) acc[p] = Ops::template mac<Full>(acc[p], r.x + (off + p * step), mask, w);
      }
  }
  const __m512 sc = Ops::scale(a, r.e, c0), bias = r.e.bias16(c0, mask);
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p)
    dw_store16<Full>(r.e, Ops::pre_scale(acc[p]), sc, bias, r.oh * g.OW + ow0 + p, c0, mask, a.y, a.ldy);
}

// Channel blocks [b0, b1) of pixels [ow0, ow0 + P).
template <class Ops, int KT, int P, bool Border>
void dw_strip(const DwRow<Ops>& r, int64_t b0, int64_t b1, int64_t ow0) {
  const int64_t C = r.a.g.C;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t c0 = b * 16;
    if (C - c0 >= 16)
      dw_tile<Ops, KT, P, true, Border>(r, c0, __mmask16(0xffff), ow0);
    else
      dw_tile<Ops, KT, P, false, Border>(r, c0, lane_mask(int(C - c0)), ow0);
  }
}

template <class Ops, int KT>
void dw_row(const DwRow<Ops>& r, int64_t b0, int64_t b1) {
  const ConvGeom& g = r.a.g;
  // interior columns: iw0 = ow * stride_w - pad_left >= 0 and iw0 + KW <= W
  const int64_t ow_lo = std::min<int64_t>(g.OW, (g.pad_left + g.stride_w - 1) / g.stride_w);
  const int64_t room = g.W - g.KW + g.pad_left;
  const int64_t ow_hi = room < 0 ? ow_lo : std::max(ow_lo, std::min<int64_t>(g.OW, room / g.stride_w + 1));
  for (int64_t ow = 0; ow < ow_lo; ++ow) dw_strip<Ops, KT, 1, true>(r, b0, b1, ow);
  int64_t ow = ow_lo;
  for (; ow + 8 <= ow_hi; ow += 8) dw_strip<Ops, KT, 8, false>(r, b0, b1, ow);
  for (; ow + 4 <= ow_hi; ow += 4) dw_strip<Ops, KT, 4, false>(r, b0, b1, ow);
  for (; ow < ow_hi; ++ow) dw_strip<Ops, KT, 1, false>(r, b0, b1, ow);
  for (ow = ow_hi; ow < g.OW; ++ow) dw_strip<Ops, KT, 1, true>(r, b0, b1, ow);
}

template <class Ops>
void dw_run(const typename Ops::Args& a) {
  const ConvGeom& g = a.g;
  const Epi e(a.ep, Ops::epi_sa(a));
  const int64_t nblocks = (g.C + 15) / 16, items = g.OH * nblocks;
  const auto* x = static_cast<const typename Ops::Elem*>(a.x);
  // items [i0, i1) -> per output row, its channel-block range
  auto work = [&](int64_t i0, int64_t i1) {
    for (int64_t oh = i0 / nblocks; oh * nblocks < i1; ++oh) {
      const int64_t b0 = std::max<int64_t>(0, i0 - oh * nblocks), b1 = std::min<int64_t>(nblocks, i1 - oh * nblocks);
      const int64_t ih0 = oh * g.stride_h - g.pad_top;
      const DwRow<Ops> r{a, e, x, oh, ih0, std::max<int64_t>(0, -ih0), std::min<int64_t>(g.KH, g.H - ih0)};
      if (g.KH == 3 && g.KW == 3)
        dw_row<Ops, 3>(r, b0, b1);
      else
        dw_row<Ops, 0>(r, b0, b1);
    }
  };
  // ~1 tap of 16 channels per cycle: below ~64k taps a second thread costs more than it saves.
  const double taps = double(g.OH * g.OW) * double(nblocks) * double(g.KH * g.KW);
  const int nt = (omp_in_parallel() || taps < 65536.0) ? 1 : int(std::min<int64_t>(omp_get_max_threads(), items));
  if (nt <= 1) {
    work(0, items);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    work(items * t / n, items * (t + 1) / n);
  }
}

}  // namespace
}  // namespace mpq::kernels
