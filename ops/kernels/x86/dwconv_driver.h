// Shared AVX-512 driver of the NHWC depthwise convolutions (f32 / f16 / int8), included by each
// dwconv_*__avx512*.cpp. Anonymous namespace on purpose: every including TU gets its own copy compiled
// with its own ISA flags (as ops/kernels/x86/gemm_lowp_driver.h, whose Epi epilogue it reuses).
//
// Work split: items = (output row oh, block of 16 channels), numbered row-major, contiguous near-equal
// ranges per OpenMP thread.
// 3x3 with stride 1 or 2 (every depthwise layer of the models): output rows go in pairs (when both rows
// of a pair have the same channel-block range), columns in tiles of 8 / 7 / 4 / 2 / 1 pixels, and per
// (tile, channel block) dw_tile_rows runs input-driven: each input vector of the tile's window is loaded
// and widened ONCE and multiplied into every accumulator whose window holds it (up to 6 for stride 1),
// weights in 9 registers. Taps outside the image (rows or columns) are skipped. A tile's input
// (4 rows x 10 pixels x 16 channels) stays in L1 across its channel blocks.
// Other kernels / strides: dw_tile_generic, weights loaded per tap, border pixels one at a time.
// Every accumulator receives its taps in (kh, kw) ascending order -- the reference's order, so the float
// paths are bit-exact with it -- and leaves through dw_store16 (the shared LowpEpilogue sequence).
// Channel tail (C % 16): masked loads and stores; the packed weights are padded to Cp (multiple of 32),
// so weight loads never need a mask.
//
// Ops policy (one per dtype):
//   using Args, Acc (accumulator vector), WVec (widened weights), XVec (widened input), Elem, Ctx;
//   static Ctx ctx(const Args&);                                   // per-call constants (int8: za)
//   static WVec load_w(const Args&, int64_t t, int64_t c0);        // tap t, channels c0..c0+15
//   template <bool Full> static XVec load_x(const Elem*, __mmask16, const Ctx&);
//   static Acc zero(); static Acc fma(Acc, XVec, WVec);            // acc + x * w
//   static __m512 pre_scale(Acc); static __m512 scale(const Args&, const Epi&, int64_t c0);
//   static float epi_sa(const Args&);
#pragma once
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#include <omp.h>

#include <algorithm>

#include "ops/kernels/nhwc.h"
#include "ops/kernels/x86/gemm_lowp_driver.h"

namespace mpq::kernels {
namespace {

// The LowpEpilogue of a tile, as a value: dw_tile_* copy it into a local before their stores, because the
// intrinsic stores may alias anything reachable through a pointer or reference (the __m512 types are
// may_alias), which made GCC reload every epilogue constant after every store.
struct DwEpi {
  __m512 lo, hi, inv_os, zp_f, res_scale;
  __m512i res_zp;
  const void* residual;
  int64_t ld_res;
  void* y;
  int64_t ldy;
  DType out;
  bool res_u8, clamp;
  DwEpi(const Epi& e, void* y_, int64_t ldy_)
      : lo(e.lo),
        hi(e.hi),
        inv_os(e.inv_os),
        zp_f(e.zp_f),
        res_scale(e.res_scale),
        res_zp(e.res_zp),
        residual(e.ep.residual),
        ld_res(e.ep.ld_res),
        y(y_),
        ldy(ldy_),
        out(e.ep.out),
        res_u8(e.ep.residual_u8),
        clamp(e.clamp) {}
};

// Epi::store16s's f32 op sequence for output pixel m, channels n .. n+15: plain stores and residual loads
// for full blocks (Full), masked ones for the channel tail.
template <bool Full>
inline void dw_store16(const DwEpi& e, __m512 f, __m512 sc, __m512 b, int64_t m, int64_t n, __mmask16 mask) {
  __m512 y = _mm512_fmadd_ps(f, sc, b);
  if (e.residual) {
    if (e.res_u8) {
      const uint8_t* rp = static_cast<const uint8_t*>(e.residual) + m * e.ld_res + n;
      const __m128i r8 = Full ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(rp)) : _mm_maskz_loadu_epi8(mask, rp);
      const __m512i r = _mm512_sub_epi32(_mm512_cvtepu8_epi32(r8), e.res_zp);
      y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(r), e.res_scale, y);
    } else {
      const float* rp = static_cast<const float*>(e.residual) + m * e.ld_res + n;
      y = _mm512_add_ps(y, Full ? _mm512_loadu_ps(rp) : _mm512_maskz_loadu_ps(mask, rp));
    }
  }
  if (e.clamp) {
    y = _mm512_max_ps(y, e.lo);  // y > lo ? y : lo
    y = _mm512_min_ps(y, e.hi);  // y < hi ? y : hi
  }
  switch (e.out) {
    case DType::f32: {
      float* p = static_cast<float*>(e.y) + m * e.ldy + n;
      Full ? _mm512_storeu_ps(p, y) : _mm512_mask_storeu_ps(p, mask, y);
      break;
    }
    case DType::f16: {
      uint16_t* p = static_cast<uint16_t*>(e.y) + m * e.ldy + n;
      const __m256i h = _mm512_cvtps_ph(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      Full ? _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), h) : _mm256_mask_storeu_epi16(p, mask, h);
      break;
    }
    case DType::u8: {
      __m512 t = _mm512_mul_ps(y, e.inv_os);
      t = _mm512_add_ps(t, e.zp_f);
      t = _mm512_max_ps(t, _mm512_setzero_ps());
      t = _mm512_min_ps(t, _mm512_set1_ps(255.0f));
      const __m512i q = _mm512_cvtps_epi32(t);  // RNE under the default MXCSR
      uint8_t* p = static_cast<uint8_t*>(e.y) + m * e.ldy + n;
      if (Full)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(q));
      else
        _mm512_mask_cvtepi32_storeu_epi8(p, mask, q);
      break;
    }
    default:  // f32, f16 and u8 only: refused by the argument checks before any store
      break;
  }
}

// Per output row: what every tile of the row shares.
template <class Ops>
struct DwRow {
  using Args = typename Ops::Args;
  using Elem = typename Ops::Elem;
  const Args& a;
  const Epi& e;
  const typename Ops::Ctx& k;
  const Elem* x;  // input [H, W, ldx]
  int64_t oh, ih0, kh0, kh1;
};

// Any kernel / stride: pixels [ow0, ow0 + P) of row r, channel block c0, taps kh in [r.kh0, r.kh1),
// kw in [kw0, kw1) (the caller clips kw for a border pixel, P == 1), weights loaded per tap.
template <class Ops, int P, bool Full>
void dw_tile_generic(const DwRow<Ops>& r, int64_t c0, __mmask16 mask, int64_t ow0, int64_t kw0, int64_t kw1) {
  using Acc = typename Ops::Acc;
  const auto& a = r.a;
  const ConvGeom& g = a.g;
  const int64_t ldx = g.ldx, step = g.stride_w * ldx, iw0 = ow0 * g.stride_w - g.pad_left;
  Acc acc[P];
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p) acc[p] = Ops::zero();
  for (int64_t kh = r.kh0; kh < r.kh1; ++kh)
    for (int64_t kw = kw0; kw < kw1; ++kw) {
      const typename Ops::WVec w = Ops::load_w(a, kh * g.KW + kw, c0);
      const int64_t off = ((r.ih0 + kh) * g.W + iw0 + kw) * ldx + c0;  // valid tap (kh, kw) of pixel ow0
#pragma GCC unroll 8
      for (int p = 0; p < P; ++p)
        acc[p] = Ops::fma(acc[p], Ops::template load_x<Full>(r.x + (off + p * step), mask, r.k), w);
    }
  const __m512 sc = Ops::scale(a, r.e, c0), bias = r.e.bias16(c0, mask);
  const DwEpi e(r.e, a.y, a.ldy);
  const int64_t m0 = r.oh * g.OW + ow0;
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p) dw_store16<Full>(e, Ops::pre_scale(acc[p]), sc, bias, m0 + p, c0, mask);
}

template <class Ops, int P>
void dw_generic_blocks(const DwRow<Ops>& r, int64_t b0, int64_t b1, int64_t ow0, int64_t kw0, int64_t kw1) {
  const int64_t C = r.a.g.C;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t c0 = b * 16;
    if (C - c0 >= 16)
      dw_tile_generic<Ops, P, true>(r, c0, __mmask16(0xffff), ow0, kw0, kw1);
    else
      dw_tile_generic<Ops, P, false>(r, c0, lane_mask(int(C - c0)), ow0, kw0, kw1);
  }
}

template <class Ops>
void dw_row_generic(const DwRow<Ops>& r, int64_t b0, int64_t b1) {
  const ConvGeom& g = r.a.g;
  // interior columns: iw0 = ow * stride_w - pad_left >= 0 and iw0 + KW <= W
  const int64_t ow_lo = std::min<int64_t>(g.OW, (g.pad_left + g.stride_w - 1) / g.stride_w);
  const int64_t room = g.W - g.KW + g.pad_left;
  const int64_t ow_hi = room < 0 ? ow_lo : std::max(ow_lo, std::min<int64_t>(g.OW, room / g.stride_w + 1));
  auto border = [&](int64_t ow) {
    const int64_t iw0 = ow * g.stride_w - g.pad_left;
    dw_generic_blocks<Ops, 1>(r, b0, b1, ow, std::max<int64_t>(0, -iw0), std::min<int64_t>(g.KW, g.W - iw0));
  };
  for (int64_t ow = 0; ow < ow_lo; ++ow) border(ow);
  int64_t ow = ow_lo;
  for (; ow + 8 <= ow_hi; ow += 8) dw_generic_blocks<Ops, 8>(r, b0, b1, ow, 0, g.KW);
  for (; ow + 4 <= ow_hi; ow += 4) dw_generic_blocks<Ops, 4>(r, b0, b1, ow, 0, g.KW);
  for (; ow < ow_hi; ++ow) dw_generic_blocks<Ops, 1>(r, b0, b1, ow, 0, g.KW);
  for (ow = ow_hi; ow < g.OW; ++ow) border(ow);
}

// 3x3, stride S (1 or 2): pixels [ow0, ow0 + P) of R output rows oh .. oh + R - 1 (r: row oh), one channel
// block. Input rows and, within a row, input columns are walked in ascending order, so each accumulator
// receives its taps in (kh, kw) ascending order; rows / columns outside the image are skipped.
template <class Ops, int S, int P, int R, bool Full>
void dw_tile_rows(const DwRow<Ops>& r, int64_t c0, __mmask16 mask, int64_t ow0) {
  using Acc = typename Ops::Acc;
  using WVec = typename Ops::WVec;
  using XVec = typename Ops::XVec;
  constexpr int NIR = (R - 1) * S + 3, NQ = (P - 1) * S + 3;  // input rows / columns of the tile
  const auto& a = r.a;
  const ConvGeom& g = a.g;
  const int64_t ldx = g.ldx, iw0 = ow0 * S - g.pad_left;
  const int64_t q_lo = std::max<int64_t>(0, -iw0), q_hi = std::min<int64_t>(NQ, g.W - iw0);  // valid columns
  WVec wr[9];
#pragma GCC unroll 9
  for (int t = 0; t < 9; ++t) wr[t] = Ops::load_w(a, t, c0);
  Acc acc[R][P];
#pragma GCC unroll 2
  for (int j = 0; j < R; ++j)
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) acc[j][p] = Ops::zero();
#pragma GCC unroll 5
  for (int ir = 0; ir < NIR; ++ir) {
    const int64_t ih = r.ih0 + ir;
    if (ih < 0 || ih >= g.H) continue;                // padding rows: their taps are skipped for every output row
    const int64_t off = (ih * g.W + iw0) * ldx + c0;  // column q at off + q * ldx (valid q only)
#pragma GCC unroll 17
    for (int q = 0; q < NQ; ++q) {
      if (q < q_lo || q >= q_hi) continue;  // padding columns
      const XVec xv = Ops::template load_x<Full>(r.x + (off + q * ldx), mask, r.k);
#pragma GCC unroll 2
      for (int j = 0; j < R; ++j) {
        const int kh = ir - j * S;
        if (kh < 0 || kh > 2) continue;
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p) {
          const int kw = q - p * S;
          if (kw < 0 || kw > 2) continue;
          acc[j][p] = Ops::fma(acc[j][p], xv, wr[kh * 3 + kw]);
        }
      }
    }
  }
  const __m512 sc = Ops::scale(a, r.e, c0), bias = r.e.bias16(c0, mask);
  const DwEpi e(r.e, a.y, a.ldy);
  const int64_t m0 = r.oh * g.OW + ow0, OW = g.OW;
#pragma GCC unroll 2
  for (int j = 0; j < R; ++j)
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) dw_store16<Full>(e, Ops::pre_scale(acc[j][p]), sc, bias, m0 + j * OW + p, c0, mask);
}

template <class Ops, int S, int P, int R>
void dw_rows_blocks(const DwRow<Ops>& r, int64_t b0, int64_t b1, int64_t ow0) {
  const int64_t C = r.a.g.C;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t c0 = b * 16;
    if (C - c0 >= 16)
      dw_tile_rows<Ops, S, P, R, true>(r, c0, __mmask16(0xffff), ow0);
    else
      dw_tile_rows<Ops, S, P, R, false>(r, c0, lane_mask(int(C - c0)), ow0);
  }
}

// 3x3, stride S: R (1 or 2) output rows from r.oh, all columns in tiles of 8 / 7 / 4 / 2 / 1 pixels
// (7: the 7x7 layers in one tile; 14 = 8 + 4 + 2; 28, 56, 112 in tiles of 8).
template <class Ops, int S, int R>
void dw_rows3(const DwRow<Ops>& r, int64_t b0, int64_t b1) {
  const int64_t OW = r.a.g.OW;
  int64_t ow = 0;
  for (; ow + 8 <= OW; ow += 8) dw_rows_blocks<Ops, S, 8, R>(r, b0, b1, ow);
  if (OW - ow == 7) dw_rows_blocks<Ops, S, 7, R>(r, b0, b1, ow), ow += 7;
  if (OW - ow >= 4) dw_rows_blocks<Ops, S, 4, R>(r, b0, b1, ow), ow += 4;
  if (OW - ow >= 2) dw_rows_blocks<Ops, S, 2, R>(r, b0, b1, ow), ow += 2;
  if (OW - ow >= 1) dw_rows_blocks<Ops, S, 1, R>(r, b0, b1, ow), ow += 1;
}

template <class Ops>
void dw_run(const typename Ops::Args& a) {
  const ConvGeom& g = a.g;
  const Epi e(a.ep, Ops::epi_sa(a));
  const int64_t nblocks = (g.C + 15) / 16, items = g.OH * nblocks;
  const auto* x = static_cast<const typename Ops::Elem*>(a.x);
  const typename Ops::Ctx k = Ops::ctx(a);
  // items [i0, i1) -> per output row, its channel-block range; 3x3 rows with stride 1 / 2 go in pairs
  // when both rows of the pair have the same block range
  const bool rows3 = g.KH == 3 && g.KW == 3 && g.stride_h == g.stride_w && (g.stride_w == 1 || g.stride_w == 2);
  auto work = [&](int64_t i0, int64_t i1) {
    auto range = [&](int64_t oh, int64_t& b0, int64_t& b1) {
      b0 = std::max<int64_t>(0, i0 - oh * nblocks), b1 = std::min<int64_t>(nblocks, i1 - oh * nblocks);
    };
    for (int64_t oh = i0 / nblocks; oh < g.OH && oh * nblocks < i1;) {
      int64_t b0, b1, c0, c1;
      range(oh, b0, b1);
      const int64_t ih0 = oh * g.stride_h - g.pad_top;
      const DwRow<Ops> r{a, e, k, x, oh, ih0, std::max<int64_t>(0, -ih0), std::min<int64_t>(g.KH, g.H - ih0)};
      if (!rows3) {
        dw_row_generic<Ops>(r, b0, b1);
        ++oh;
        continue;
      }
      bool pair = oh + 1 < g.OH && (oh + 1) * nblocks < i1;
      if (pair) range(oh + 1, c0, c1), pair = c0 == b0 && c1 == b1;
      if (g.stride_w == 1)
        pair ? dw_rows3<Ops, 1, 2>(r, b0, b1) : dw_rows3<Ops, 1, 1>(r, b0, b1);
      else
        pair ? dw_rows3<Ops, 2, 2>(r, b0, b1) : dw_rows3<Ops, 2, 1>(r, b0, b1);
      oh += pair ? 2 : 1;
    }
  };
  // One thread below 16k taps of 16 channels (~8 us of work at the measured ~2 cycles per tap), where an
  // OpenMP fork / join is no longer small against the work. A judgement, not a measured optimum: on the
  // loaded 2-core machine 2-thread timings of the small layers varied 2x from run to run.
  const double taps = double(g.OH * g.OW) * double(nblocks) * double(g.KH * g.KW);
  const int nt = (omp_in_parallel() || taps < 16384.0) ? 1 : int(std::min<int64_t>(omp_get_max_threads(), items));
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
