// NHWC depthwise conv, f32 activations and weights, AVX-512: 16 channels per vector, 3x3 weights held in
// registers, tiles of 8 / 4 / 1 output pixels (ops/kernels/x86/dwconv_driver.h). Per pixel and channel:
// acc = fma(x, w, acc) over the valid taps in (kh, kw) ascending order from acc = +0, then the LowpEpilogue
// with scale 1 -- the reference's exact op sequence, so results are bit-exact with dwconv_f32_ref.
#include "ops/kernels/x86/dwconv_driver.h"

namespace mpq::kernels {
namespace {

struct DwF32Ops {
  using Args = DwF32Args;
  using Acc = __m512;
  using WVec = __m512;
  using XVec = __m512;
  using Elem = float;
  struct Ctx {};
  static Ctx ctx(const Args&) { return {}; }
  // packed f32 [KH*KW][Cp]; Cp % 32 == 0 and c0 % 16 == 0, so every block is 64-byte aligned
  static WVec load_w(const Args& a, int64_t t, int64_t c0) {
    return _mm512_load_ps(reinterpret_cast<const float*>(a.w->w.data()) + t * a.w->Cp + c0);
  }
  template <bool Full>
  static XVec load_x(const float* x, __mmask16 m, const Ctx&) {
    return Full ? _mm512_loadu_ps(x) : _mm512_maskz_loadu_ps(m, x);
  }
  static Acc zero() { return _mm512_setzero_ps(); }
  static Acc fma(Acc acc, XVec x, WVec w) { return _mm512_fmadd_ps(x, w, acc); }  // fma(x, w, acc)
  static __m512 pre_scale(Acc acc) { return acc; }
  static __m512 scale(const Args&, const Epi&, int64_t) { return _mm512_set1_ps(1.0f); }
  static float epi_sa(const Args&) { return 1.0f; }
};

}  // namespace

void dwconv_f32_c16__avx512(const DwF32Args& a) {
  check_dw_args(a);
  dw_run<DwF32Ops>(a);
}

}  // namespace mpq::kernels
