// The element-wise NHWC kernels (ops/kernels/nhwc.h: quantize / dequantize / requantize, f32 <-> f16, residual
// add with clamp) written once over xsimd and instantiated per ISA: nhwc_convert__avx2.cpp (8 lanes) and
// nhwc_convert__avx512.cpp (16 lanes), each with its primitive struct P (xsimd_prims__<isa>.h). Each performs
// the reference's operations lane-wise, so every output is bit-exact with the reference twins:
//   quantize    t = x / s (a division, as fake_quant_act; not a multiply by 1/s), nearbyint (RNE under the
//               default rounding mode), t + float(zp), max(t, 0) (maxps returns its second operand for a NaN
//               t: 0, as the reference), min(t, 255), exact conversion of the integral value.
//   dequantize  float(q - zp) * s.   requantize: a 256-entry table built with the reference formulas, gathered.
//   f16 -> f32  vcvtph2ps, except that it quiets signalling NaNs, which core f16_to_f32 keeps: those lanes are
//               rebuilt from the half's bits.   f32 -> f16: vcvtps2ph RNE (the same NaN quieting as f32_to_f16).
//   add         min(max(a + b, lo), hi); f16 operands widened exactly, the sum rounded RNE to f16.
// Large arrays are split over the OpenMP threads in 64-element-aligned chunks. In each chunk a masked head
// brings the f32 stream to a full-vector boundary first: vector accesses that split cache lines cost ~30 % on
// a 1.2M-element dequantize (bench/bench_nhwc.cpp).
#pragma once
#include <omp.h>

#include <cstdint>

#include "ops/kernels/nhwc.h"
#include "ops/kernels/x86/xsimd_prims.h"

namespace mpq::kernels::xrows {

// fn(i0, i1) over [0, n), in parallel when n is large enough to pay for the fork (memory-bound loops). P is
// unused but ties every instantiation to its ISA's unit (P has internal linkage there).
template <class P, class Fn>
void chunked(int64_t n, Fn fn) {
  const int nt = (omp_in_parallel() || n < (int64_t(1) << 16)) ? 1 : omp_get_max_threads();
  if (nt <= 1) {
    fn(int64_t(0), n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), k = omp_get_num_threads();
    const int64_t a = (n * t / k) / 64 * 64, b = (n * (t + 1) / k) / 64 * 64;
    fn(a < n ? a : n, t + 1 == k ? n : (b < n ? b : n));
  }
}

// step(i, lanes) over [i0, i1): a head of partial width up to the first full-vector boundary of the f32
// stream f32s (input or output; none if null), full vectors, then a partial tail.
template <class P, class Step>
[[gnu::always_inline]] inline void aligned_steps(int64_t i0, int64_t i1, const void* f32s, Step step) {
  constexpr int64_t N = kLanes<P>, vbytes = N * 4;
  const uintptr_t addr = reinterpret_cast<uintptr_t>(f32s) + uintptr_t(i0) * 4;
  int64_t i = i0;
  if (f32s != nullptr && addr % 4 == 0) {
    const int64_t h = int64_t((vbytes - addr % vbytes) % vbytes / 4);
    if (h > 0) {
      step(i, h < i1 - i ? h : i1 - i);
      i += h < i1 - i ? h : i1 - i;
    }
  }
  for (; i + N <= i1; i += N) step(i, N);
  if (i < i1) step(i, i1 - i);
}

// core f16_to_f32 on halves [0, n) of p: vcvtph2ps, then signalling NaNs (exponent 31 and quiet bit 0x200 clear:
// bits 0x7e00 == 0x7c00; the other 9 mantissa bits non-zero) rebuilt bit by bit: sign << 16 | 0x7f800000 |
// mantissa << 13.
template <class P>
F<P> load_f16_exact(const uint16_t* p, int64_t n) {
  const F<P> f = P::load_f16(p, n);
  const U<P> w = P::load_u16(p, n);
  const auto snan = ((w & U<P>(0x7e00u)) == U<P>(0x7c00u)) & ((w & U<P>(0x1ffu)) != U<P>(0u));
  if (!xsimd::any(snan)) return f;
  const U<P> bits = ((w & U<P>(0x8000u)) << 16) | U<P>(0x7f800000u) | ((w & U<P>(0x3ffu)) << 13);
  return xsimd::bitwise_cast<F<P>>(xsimd::select(snan, bits, xsimd::bitwise_cast<U<P>>(f)));
}

template <class P>
void quantize_f32_u8(const CvtArgs& a) {
  const auto* x = static_cast<const float*>(a.x);
  auto* y = static_cast<uint8_t*>(a.y);
  const float s = a.scale, zp = float(a.zp);
  chunked<P>(a.n, [&](int64_t i0, int64_t i1) {
    const F<P> sv(s), zv(zp), lo(0.0f), hi(255.0f);
    aligned_steps<P>(i0, i1, x, [&](int64_t i, int64_t n) {
      const F<P> t = xsimd::min(xsimd::max(xsimd::nearbyint(P::load(x + i, n) / sv) + zv, lo), hi);
      P::store_u8(y + i, xsimd::bitwise_cast<U<P>>(xsimd::nearbyint_as_int(t)), n);
    });
  });
}

template <class P>
void dequantize_u8_f32(const CvtArgs& a) {
  const auto* q = static_cast<const uint8_t*>(a.x);
  auto* y = static_cast<float*>(a.y);
  const float s = a.scale;
  const int32_t zp = a.zp;
  chunked<P>(a.n, [&](int64_t i0, int64_t i1) {
    const F<P> sv(s);
    const I<P> zv(zp);
    aligned_steps<P>(i0, i1, y, [&](int64_t i, int64_t n) {
      const I<P> v = xsimd::bitwise_cast<I<P>>(P::load_u8(q + i, n)) - zv;
      P::store(y + i, xsimd::batch_cast<float>(v) * sv, n);
    });
  });
}

template <class P>
void requantize_u8_u8(const CvtArgs& a) {
  alignas(64) int32_t lut[256];  // [256] quantize(dequantize(q)) with the reference formulas, widened to dwords
  for (int q = 0; q < 256; ++q)
    lut[q] = quantize_value(dequantize_value(uint8_t(q), a.scale, a.zp), a.scale_out, a.zp_out);
  const auto* q = static_cast<const uint8_t*>(a.x);
  auto* y = static_cast<uint8_t*>(a.y);
  chunked<P>(a.n, [&](int64_t i0, int64_t i1) {
    // no f32 stream: alignment of the output bytes does not matter
    aligned_steps<P>(i0, i1, nullptr, [&](int64_t i, int64_t n) {
      P::store_u8(y + i, P::gather(lut, P::load_u8(q + i, n)), n);  // lanes past n read lut[0]
    });
  });
}

template <class P>
void convert_f32_f16(const CvtArgs& a) {
  const auto* x = static_cast<const float*>(a.x);
  auto* y = static_cast<uint16_t*>(a.y);
  chunked<P>(a.n, [&](int64_t i0, int64_t i1) {
    aligned_steps<P>(i0, i1, x, [&](int64_t i, int64_t n) { P::store_f16(y + i, P::load(x + i, n), n); });
  });
}

template <class P>
void convert_f16_f32(const CvtArgs& a) {
  const auto* x = static_cast<const uint16_t*>(a.x);
  auto* y = static_cast<float*>(a.y);
  chunked<P>(a.n, [&](int64_t i0, int64_t i1) {
    aligned_steps<P>(i0, i1, y, [&](int64_t i, int64_t n) { P::store(y + i, load_f16_exact<P>(x + i, n), n); });
  });
}

// y = min(max(a + b, lo), hi) per row of C channels.
template <class P>
void add_clamp_nhwc(const AddArgs& a) {
  constexpr int64_t N = kLanes<P>;
  const bool f16 = a.dt == DType::f16;
  auto row = [&](int64_t r) {
    const F<P> lo(a.lo), hi(a.hi);
    for (int64_t c = 0; c < a.C; c += N) {
      const int64_t n = a.C - c;
      F<P> s;
      if (f16)
        s = load_f16_exact<P>(static_cast<const uint16_t*>(a.a) + r * a.lda + c, n) +
            load_f16_exact<P>(static_cast<const uint16_t*>(a.b) + r * a.ldb + c, n);
      else
        s = P::load(static_cast<const float*>(a.a) + r * a.lda + c, n) +
            P::load(static_cast<const float*>(a.b) + r * a.ldb + c, n);
      s = xsimd::min(xsimd::max(s, lo), hi);
      if (f16)
        P::store_f16(static_cast<uint16_t*>(a.y) + r * a.ldy + c, s, n);
      else
        P::store(static_cast<float*>(a.y) + r * a.ldy + c, s, n);
    }
  };
  const int nt = (omp_in_parallel() || a.rows * a.C < (int64_t(1) << 16)) ? 1 : omp_get_max_threads();
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < a.rows; ++r) row(r);
}

}  // namespace mpq::kernels::xrows
