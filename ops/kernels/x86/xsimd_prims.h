// Shared pieces of the kernels written once over xsimd and instantiated per ISA (transformer_f32_xsimd.h,
// nhwc_convert_xsimd.h): batch aliases over a primitive struct P and the generic helpers. The per-ISA
// primitive structs (the operations xsimd 8.1, Debian 12's libxsimd-dev, lacks: masked loads / stores, f16,
// narrowing) are xsimd_prims__avx2.h and xsimd_prims__avx512.h; only that ISA's translation units include them.
#pragma once
#include <xsimd/xsimd.hpp>

#include <cstdint>

namespace mpq::kernels::xrows {

template <class P>
using F = xsimd::batch<float, typename P::arch>;
template <class P>
using I = xsimd::batch<int32_t, typename P::arch>;
template <class P>
using U = xsimd::batch<uint32_t, typename P::arch>;
template <class P>
using D = xsimd::batch<double, typename P::arch>;
template <class P>
inline constexpr int64_t kLanes = int64_t(F<P>::size);

// Lanes [0, n) true, the rest false (used on partial steps only).
template <class P>
xsimd::batch_bool<float, typename P::arch> lanes(int64_t n) {
  alignas(64) static constexpr float kIota[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  return F<P>::load_aligned(kIota) < F<P>(float(n));
}

// p * 2^n as (p * 2^n1) * 2^n2 with n1 = floor(n / 2), n2 = n - n1, both in [-75, 64] for n in [-150, 128]:
// two normal scales built from exponent bits. The first multiply is exact, so the second is the only rounding,
// as in vscalefps.
template <class P>
F<P> scale_pow2_split(F<P> p, F<P> n) {
  const I<P> ni = xsimd::nearbyint_as_int(n);
  const I<P> n1 = ni >> 1, n2 = ni - n1;  // arithmetic shift: floor
  const F<P> s1 = xsimd::bitwise_cast<F<P>>((n1 + I<P>(127)) << 23);
  const F<P> s2 = xsimd::bitwise_cast<F<P>>((n2 + I<P>(127)) << 23);
  return (p * s1) * s2;
}

}  // namespace mpq::kernels::xrows
