// Shared AVX-512 driver of the NHWC depthwise convolutions (f32 / f16 / int8), included by each
// dwconv_*__avx512*.cpp. Anonymous namespace on purpose: every including TU gets its own copy compiled
// with its own ISA flags (as ops/x86/gemm_lowp_driver.h, whose Epi epilogue it reuses).
//
// Work item = (output row oh, block of 16 channels c0..c0+15); items are numbered row-major and split in
// contiguous near-equal ranges over the OpenMP threads (a row's KH input rows stay in cache across its
// channel blocks). Per item:
//   weights of the block -> registers (3x3: 9 vectors; other kernels: loaded per tap from L1)
//   taps of rows outside the image are skipped for the whole row (kh range [kh0, kh1))
//   border columns (a window leaves the image left / right): one pixel at a time, valid taps only
//   interior columns: tiles of 8 / 4 / 1 pixels, P independent accumulators, every tap valid
//   each pixel's taps are accumulated in (kh, kw) ascending order -- the reference's order, so the float
//   paths are bit-exact with it -- and leave through Epi::store16s (the shared LowpEpilogue sequence).
// Channel tail (C % 16): masked loads and stores; the packed weights are padded to Cp (multiple of 32).
//
// Ops policy (one per dtype):
//   using Args; using Acc; using WVec;
//   static WVec load_w(const Args&, int64_t t, int64_t c0);                 // tap t, channels c0..c0+15
//   static Acc start(const Args&, int64_t c0, kh0, kh1, kw0, kw1);          // accumulator before the taps
//   template <bool Full> static Acc mac(Acc, const Elem* x, __mmask16, WVec);  // one tap
//   static __m512 pre_scale(Acc); static __m512 scale(const Args&, const Epi&, int64_t c0);
//   using Elem (input element type); static float epi_sa(const Args&);
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

template <class Ops, int KT, bool Full>
struct DwItem {
  using Args = typename Ops::Args;
  using Acc = typename Ops::Acc;
  using WVec = typename Ops::WVec;
  using Elem = typename Ops::Elem;

  const Args& a;
  const Epi& e;
  int64_t oh, c0;
  __mmask16 mask;
  __m512 sc, bias;
  const Elem* x;  // input [H, W, ldx]

  // P pixels ow0 .. ow0+P-1, all taps of rows [kh0, kh1) inside the image; wr: the block's weights.
  template <int P>
  void tile(const WVec* wr, Acc start, int64_t ih0, int64_t kh0, int64_t kh1, int64_t ow0) const {
    const ConvGeom& g = a.g;
    const int64_t sw = g.stride_w, ldx = g.ldx;
    Acc acc[P];
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) acc[p] = start;
    // Element offset of tap (kh = 0, kw = 0) of pixel ow0; negative when row ih0 is above the image (those
    // rows are skipped), so only offsets of valid rows are turned into pointers.
    const int64_t off0 = (ih0 * g.W + ow0 * sw - g.pad_left) * ldx + c0;
    if constexpr (KT > 0) {
#pragma GCC unroll 7
      for (int kh = 0; kh < KT; ++kh) {
        if (kh < kh0 || kh >= kh1) continue;
        const Elem* row = x + (off0 + kh * g.W * ldx);
#pragma GCC unroll 7
        for (int kw = 0; kw < KT; ++kw) {
          const WVec w = wr[kh * KT + kw];
#pragma GCC unroll 8
          for (int p = 0; p < P; ++p) acc[p] = Ops::template mac<Full>(acc[p], row + (p * sw + kw) * ldx, mask, w);
        }
      }
    } else {
      for (int64_t kh = kh0; kh < kh1; ++kh) {
        const Elem* row = x + (off0 + kh * g.W * ldx);
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const WVec w = Ops::load_w(a, kh * g.KW + kw, c0);
#pragma GCC unroll 8
          for (int p = 0; p < P; ++p) acc[p] = Ops::template mac<Full>(acc[p], row + (p * sw + kw) * ldx, mask, w);
        }
      }
    }
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) e.store16s(Ops::pre_scale(acc[p]), sc, bias, oh * g.OW + ow0 + p, c0, mask, a.y, a.ldy);
  }

  // One pixel whose window may leave the image on the left / right: valid taps only.
  void border(int64_t ih0, int64_t kh0, int64_t kh1, int64_t ow) const {
    const ConvGeom& g = a.g;
    const int64_t iw0 = ow * g.stride_w - g.pad_left;
    const int64_t kw0 = std::max<int64_t>(0, -iw0), kw1 = std::min<int64_t>(g.KW, g.W - iw0);
    Acc acc = Ops::start(a, c0, kh0, kh1, kw0, kw1);
    for (int64_t kh = kh0; kh < kh1; ++kh)
      for (int64_t kw = kw0; kw < kw1; ++kw)
        acc = Ops::template mac<Full>(acc, x + ((ih0 + kh) * g.W + iw0 + kw) * g.ldx + c0, mask,
                                      Ops::load_w(a, kh * g.KW + kw, c0));
    e.store16s(Ops::pre_scale(acc), sc, bias, oh * g.OW + ow, c0, mask, a.y, a.ldy);
  }

  void run() const {
    const ConvGeom& g = a.g;
    const int64_t ih0 = oh * g.stride_h - g.pad_top;
    const int64_t kh0 = std::max<int64_t>(0, -ih0), kh1 = std::min<int64_t>(g.KH, g.H - ih0);
    // interior: iw0 = ow * sw - pad_left >= 0 and iw0 + KW <= W
    const int64_t ow_lo = std::min<int64_t>(g.OW, (g.pad_left + g.stride_w - 1) / g.stride_w);
    const int64_t room = g.W - g.KW + g.pad_left;
    const int64_t ow_hi = room < 0 ? ow_lo : std::max(ow_lo, std::min<int64_t>(g.OW, room / g.stride_w + 1));
    WVec wr[KT > 0 ? KT * KT : 1];
    if constexpr (KT > 0)
      for (int t = 0; t < KT * KT; ++t) wr[t] = Ops::load_w(a, t, c0);
    const Acc start = Ops::start(a, c0, kh0, kh1, 0, g.KW);
    for (int64_t ow = 0; ow < ow_lo; ++ow) border(ih0, kh0, kh1, ow);
    int64_t ow = ow_lo;
    for (; ow + 8 <= ow_hi; ow += 8) tile<8>(wr, start, ih0, kh0, kh1, ow);
    for (; ow + 4 <= ow_hi; ow += 4) tile<4>(wr, start, ih0, kh0, kh1, ow);
    for (; ow < ow_hi; ++ow) tile<1>(wr, start, ih0, kh0, kh1, ow);
    for (ow = ow_hi; ow < g.OW; ++ow) border(ih0, kh0, kh1, ow);
  }
};

template <class Ops>
void dw_run(const typename Ops::Args& a) {
  const ConvGeom& g = a.g;
  const Epi e(a.ep, Ops::epi_sa(a));
  const int64_t nblocks = (g.C + 15) / 16, items = g.OH * nblocks;
  const auto* x = static_cast<const typename Ops::Elem*>(a.x);
  auto work = [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t oh = i / nblocks, c0 = (i % nblocks) * 16;
      const __mmask16 mask = lane_mask(int(std::min<int64_t>(16, g.C - c0)));
      const __m512 sc = Ops::scale(a, e, c0), bias = e.bias16(c0, mask);
      const bool full = g.C - c0 >= 16;
      if (g.KH == 3 && g.KW == 3) {
        if (full)
          DwItem<Ops, 3, true>{a, e, oh, c0, mask, sc, bias, x}.run();
        else
          DwItem<Ops, 3, false>{a, e, oh, c0, mask, sc, bias, x}.run();
      } else {
        if (full)
          DwItem<Ops, 0, true>{a, e, oh, c0, mask, sc, bias, x}.run();
        else
          DwItem<Ops, 0, false>{a, e, oh, c0, mask, sc, bias, x}.run();
      }
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
