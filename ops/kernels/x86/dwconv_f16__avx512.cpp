// NHWC depthwise conv, f16 activations and weights, AVX-512: both widened to f32 in registers
// (vcvtph2ps, exact), f32 FMA accumulation in (kh, kw) ascending order from +0, then the LowpEpilogue
// with scale 1 (f16 output: vcvtps2ph, RNE) -- bit-exact with dwconv_f16_ref. Tiling as
// ops/kernels/x86/dwconv_driver.h: 16 channels per vector, 3x3 weights (converted once per block) in registers.
#include "ops/kernels/x86/dwconv_driver.h"

namespace mpq::kernels {
namespace {

struct DwF16Ops {
  using Args = DwF16Args;
  using Acc = __m512;
  using WVec = __m512;
  using XVec = __m512;
  using Elem = uint16_t;
  struct Ctx {};
  static Ctx ctx(const Args&) { return {}; }
  // packed f16 [KH*KW][Cp]: 16 halves = 32 aligned bytes per block
  static WVec load_w(const Args& a, int64_t t, int64_t c0) {
    const auto* w = reinterpret_cast<const uint16_t*>(a.w->w.data()) + t * a.w->Cp + c0;
    return _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(w)));
  }
  template <bool Full>
  static XVec load_x(const uint16_t* x, __mmask16 m, const Ctx&) {
    return _mm512_cvtph_ps(Full ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x))
                                : _mm256_maskz_loadu_epi16(m, x));
  }
  static Acc zero() { return _mm512_setzero_ps(); }
  static Acc fma(Acc acc, XVec x, WVec w) { return _mm512_fmadd_ps(x, w, acc); }  // fma(x, w, acc)
  static __m512 pre_scale(Acc acc) { return acc; }
  static __m512 scale(const Args&, const Epi&, int64_t) { return _mm512_set1_ps(1.0f); }
  static float epi_sa(const Args&) { return 1.0f; }
};

}  // namespace

void dwconv_f16_c16__avx512(const DwF16Args& a) {
  check_dw_args(a);
  dw_run<DwF16Ops>(a);
}

}  // namespace mpq::kernels
