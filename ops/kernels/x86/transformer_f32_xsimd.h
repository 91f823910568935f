// The transformer row kernels (ops/kernels/transformer.h) written once over xsimd::batch<float, Arch> and
// instantiated per ISA: transformer_f32__avx2.cpp (xsimd::fma3<xsimd::avx2>, 8 lanes) and
// transformer_f32__avx512.cpp (xsimd::avx512bw, 16 lanes), each compiled with its own -m flags.
//
// The row logic, the exp and erf polynomials (constants in transcendental_f32.h), the quantize / bf16 rounding
// and the reductions are written here with xsimd operations. The template parameter P is a struct of per-ISA
// primitives that xsimd 8.1 (Debian 12's libxsimd-dev) does not provide or provides differently:
//   using arch                       the xsimd architecture tag
//   load(p, n) / store(p, y, n)      f32 lanes [0, min(n, lanes)); the other lanes load as 0, and no memory
//                                    past them is read or written (xsimd 8.1 has no masked load / store)
//   store_f16(p, y, n)               round to nearest even binary16 (vcvtps2ph; xsimd 8.1 has no f16)
//   store_u16(p, v, n), store_u8     narrowing stores of u32 lanes in [0, 0xffff] / [0, 255]
//   widen_lo(y), widen_hi(y)         lanes [0, lanes/2) / [lanes/2, lanes) as double (exact)
//   hmax(y)                          the largest lane (xsimd 8.1 has hadd but no max reduction)
//   fma(a, b, c)                     a * b + c with one rounding. xsimd 8.1 fuses only on fma3<...> archs; on
//                                    avx512f its fma is a * b + c, two roundings under -ffp-contract=off.
//   scale_pow2(p, n)                 p * 2^n for integral n in [-150, 128] with one rounding (vscalefps on
//                                    AVX-512; scale_pow2_split below on AVX2)
//   quotient(p, q)                   p / q of the erf rational (AVX2: vdivps; AVX-512: rcp14 + one Newton step)
// exp(x): x clamped to [-104, 88.7]; n = round(x log2 e), r = x - n ln2 (ln2 split hi/lo, exact first
//         product), Taylor degree 7 on |r| <= ln2/2, times 2^n. Measured (the hand-written versions this code
//         replaced, same operations): within 1 ulp (AVX2) / 2 ulp (AVX-512) of std::exp; exp(-10000) of a
//         masked key is exactly 0, gradual underflow below -87.3 as std::exp.
// erf(x): the XLA / Eigen rational approximation (odd degree-13 numerator, even degree-8 denominator) on x
//         clamped to [-3.8, 3.8]. Max |error| 3.5e-7 (AVX2) / 3.1e-7 (AVX-512) against the double erf; the
//         gelu sweep in tests/test_kernels_transformer.cpp prints the current figure.
// Internal linkage: each TU's P lives in an anonymous namespace, so every template here instantiated with it
// (and the per-thread row buffer) is local to that TU; the linker cannot hand the AVX2 path a copy compiled
// with AVX-512 flags.
#pragma once
#include <cmath>
#include <cstdint>

#include "ops/kernels/transformer.h"
#include "ops/kernels/x86/transcendental_f32.h"
#include "ops/kernels/x86/xsimd_prims.h"

namespace mpq::kernels::xrows {

template <class P>
F<P> exp_poly(F<P> x) {
  x = xsimd::min(xsimd::max(x, F<P>(poly::kExpMin)), F<P>(poly::kExpMax));
  const F<P> n = xsimd::nearbyint(x * F<P>(poly::kLog2e));
  F<P> r = P::fma(n, F<P>(-poly::kLn2Hi), x);  // x - n ln2hi, exact
  r = P::fma(n, F<P>(-poly::kLn2Lo), r);
  F<P> p(poly::kExpTaylor[0]);
  for (int i = 1; i < 8; ++i) p = P::fma(p, r, F<P>(poly::kExpTaylor[i]));
  return P::scale_pow2(p, n);
}

template <class P>
F<P> erf_poly(F<P> x) {
  x = xsimd::min(xsimd::max(x, F<P>(-poly::kErfClamp)), F<P>(poly::kErfClamp));
  const F<P> x2 = x * x;
  F<P> p(poly::kErfP[0]);
  for (int i = 1; i < 7; ++i) p = P::fma(x2, p, F<P>(poly::kErfP[i]));
  p = x * p;
  F<P> q(poly::kErfQ[0]);
  for (int i = 1; i < 5; ++i) q = P::fma(x2, q, F<P>(poly::kErfQ[i]));
  return P::quotient(p, q);
}

// Stores y's lanes [0, n) at (r, c) in o's format with the scalar store's rounding (act_store_scalar).
// Forced inline: GCC 12 kept it out of line (a call per step, twice per step in layer norm, which measured
// 13 % more CPU time than the hand-written version that way and the same once inlined).
template <class P>
[[gnu::always_inline]] inline void store(const ActOut& o, int64_t r, int64_t c, F<P> y, int64_t n) {
  const int64_t at = r * o.ld + c;
  switch (o.dt) {
    case DType::f32:
      P::store(static_cast<float*>(o.p) + at, y, n);
      break;
    case DType::f16:
      P::store_f16(static_cast<uint16_t*>(o.p) + at, y, n);
      break;
    case DType::bf16: {  // f32_to_bf16: (u + 0x7fff + lsb) >> 16; NaN -> (u >> 16) | 0x40
      const U<P> u = xsimd::bitwise_cast<U<P>>(y), hi = u >> 16;
      const U<P> b = (u + U<P>(0x7fffu) + (hi & U<P>(1u))) >> 16;
      const F<P> nan_or_b =
          xsimd::select(xsimd::isnan(y), xsimd::bitwise_cast<F<P>>(hi | U<P>(0x40u)), xsimd::bitwise_cast<F<P>>(b));
      P::store_u16(static_cast<uint16_t*>(o.p) + at, xsimd::bitwise_cast<U<P>>(nan_or_b), n);
      break;
    }
    case DType::u8: {  // clamp(nearbyint(y / scale) + zp, 0, 255); NaN -> 0 (max returns its second operand)
      F<P> q = xsimd::nearbyint(y / F<P>(o.scale)) + F<P>(float(o.zp));
      q = xsimd::min(xsimd::max(q, F<P>(0.0f)), F<P>(255.0f));
      P::store_u8(static_cast<uint8_t*>(o.p) + at, xsimd::bitwise_cast<U<P>>(xsimd::nearbyint_as_int(q)), n);
      break;
    }
    default:  // not an activation format: refused by the argument checks before any store
      break;
  }
}

// int input: float(int32(x) + corr) (exact int32 add), else x.
template <class P>
F<P> load_in(const float* x, const int32_t* row_corr, int64_t r, int64_t n) {
  const F<P> v = P::load(x, n);
  if (!row_corr) return v;
  return xsimd::batch_cast<float>(xsimd::nearbyint_as_int(v) + I<P>(row_corr[r]));
}

// Per-thread [n + lanes] f32 scratch of one row, grow-only, one per ISA (P). Its own type rather than a
// std::unique_ptr / std::vector, so that no instantiation shared with the other ISA's TU is emitted.
template <class P>
struct RowBuffer {
  float* p = nullptr;
  int64_t cap = 0;
  ~RowBuffer() { delete[] p; }
};
template <class P>
float* row_buffer(int64_t n) {
  thread_local RowBuffer<P> b;
  if (b.cap < n + kLanes<P>) {
    delete[] b.p;
    b.p = nullptr, b.cap = 0;  // consistent if new throws
    b.p = new float[size_t(n + kLanes<P>)];
    b.cap = n + kLanes<P>;
  }
  return b.p;
}

template <class P>
void layer_norm_rows(const LayerNormArgs& a, int64_t r0, int64_t r1) {
  constexpr int64_t N = kLanes<P>;
  const int64_t cols = a.cols;
  float* v = row_buffer<P>(cols);  // [cols + N] one row's input; lanes past cols are 0
  for (int64_t r = r0; r < r1; ++r) {
    D<P> s(0.0);
    for (int64_t c = 0; c < cols; c += N) {
      const int64_t n = cols - c;
      F<P> x = P::load(a.x + r * a.ldx + c, n);
      if (a.bias) x = x + P::load(a.bias + c, n);
      if (a.res) x = x + P::load(a.res + r * a.ldr + c, n);
      x.store_unaligned(v + c);
      s = s + P::widen_lo(x);
      s = s + P::widen_hi(x);
    }
    const float mean = float(xsimd::hadd(s) / double(cols));
    const F<P> mv(mean);
    D<P> q(0.0);
    for (int64_t c = 0; c < cols; c += N) {
      F<P> d = F<P>::load_unaligned(v + c) - mv;
      if (cols - c < N) d = xsimd::select(lanes<P>(cols - c), d, F<P>(0.0f));
      const D<P> lo = P::widen_lo(d), hi = P::widen_hi(d);
      q = q + lo * lo;
      q = q + hi * hi;
    }
    const F<P> iv(float(1.0 / std::sqrt(xsimd::hadd(q) / double(cols) + double(a.eps))));
    for (int64_t c = 0; c < cols; c += N) {
      const int64_t n = cols - c;
      const F<P> y = ((F<P>::load_unaligned(v + c) - mv) * iv) * P::load(a.gamma + c, n) + P::load(a.beta + c, n);
      store<P>(a.out, r, c, y, n);
      if (a.out2.p) store<P>(a.out2, r, c, y, n);
    }
  }
}

template <class P>
void softmax_rows(const SoftmaxArgs& a, int64_t r0, int64_t r1) {
  constexpr int64_t N = kLanes<P>;
  const int64_t cols = a.cols;
  float* v = row_buffer<P>(cols);  // [cols + N] one row's logits, then exponentials
  const F<P> sc(a.scale), ninf(-INFINITY);
  for (int64_t r = r0; r < r1; ++r) {
    F<P> mx = ninf;
    for (int64_t c = 0; c < cols; c += N) {
      const int64_t n = cols - c;
      F<P> x = load_in<P>(a.x + r * a.ldx + c, a.row_corr, r, n);
      if (a.scale != 1.0f) x = x * sc;
      if (a.mask) x = x + P::load(a.mask + c, n);
      x.store_unaligned(v + c);
      mx = xsimd::max(mx, n < N ? xsimd::select(lanes<P>(n), x, ninf) : x);
    }
    const F<P> mxv(P::hmax(mx));
    F<P> sum(0.0f);
    for (int64_t c = 0; c < cols; c += N) {
      const F<P> e = exp_poly<P>(F<P>::load_unaligned(v + c) - mxv);
      e.store_unaligned(v + c);
      sum = sum + (cols - c < N ? xsimd::select(lanes<P>(cols - c), e, F<P>(0.0f)) : e);
    }
    const F<P> inv(1.0f / xsimd::hadd(sum));
    for (int64_t c = 0; c < cols; c += N) store<P>(a.out, r, c, F<P>::load_unaligned(v + c) * inv, cols - c);
  }
}

template <class P>
void rows_map(const RowMapArgs& a, int64_t r0, int64_t r1) {
  constexpr int64_t N = kLanes<P>;
  const F<P> sc(a.scale), half(0.5f), one(1.0f), inv_sqrt2(0.70710678118654752f);  // as ops/activation.cpp
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = 0; c < a.cols; c += N) {
      const int64_t n = a.cols - c;
      F<P> v = load_in<P>(a.x + r * a.ldx + c, a.row_corr, r, n);
      if (a.scale != 1.0f) v = v * sc;
      if (a.bias) v = v + P::load(a.bias + c, n);
      if (a.gelu) v = (half * v) * (one + erf_poly<P>(v * inv_sqrt2));
      store<P>(a.out, r, c, v, n);
    }
}

}  // namespace mpq::kernels::xrows
