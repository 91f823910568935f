// NHWC depthwise conv W8A8 (u8 activations, s8 per-channel weights), AVX-512 VNNI.
//
// One tap of 16 channels = one vpdpwssd: the activation bytes zero-extended to dwords (high word 0) times
// the weights sign-extended to dwords, so each dword gains x * w + 0 * (sign word) = x * w exactly (int32,
// no saturation in vpdpwssd). The zero point is folded into the start value: acc starts at
// -za * sum(w over the window's valid taps), so acc ends at sum (x - za) * w over the valid taps, padded
// taps contributing 0 as in the reference. Then f = float(acc), scale = sa * s[c] (one f32 multiply) and
// the LowpEpilogue: bit-exact with dwconv_qu8_qc8w_ref. Tiling as ops/x86/dwconv_driver.h.
#include "ops/x86/dwconv_driver.h"

namespace mpq::kernels {
namespace {

struct DwQ8Ops {
  using Args = DwQ8Args;
  using Acc = __m512i;
  using WVec = __m512i;
  using Elem = uint8_t;
  // packed s8 [KH*KW][Cp]: 16 aligned bytes per block, sign-extended to 16 dwords
  static WVec load_w(const Args& a, int64_t t, int64_t c0) {
    return _mm512_cvtepi8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(a.w->w.data() + t * a.w->Cp + c0)));
  }
  static constexpr bool kWsum = true;
  // -za * (sum of the window's valid weights): the accumulator then ends at sum (x - za) * w
  static Acc start(const Args& a, WVec wsum) { return _mm512_mullo_epi32(wsum, _mm512_set1_epi32(-a.za)); }
  static WVec wadd(WVec a, WVec b) { return _mm512_add_epi32(a, b); }
  template <bool Full>
  static Acc mac(Acc acc, const uint8_t* x, __mmask16 m, WVec w) {
    const __m128i b = Full ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(x)) : _mm_maskz_loadu_epi8(m, x);
    return _mm512_dpwssd_epi32(acc, _mm512_cvtepu8_epi32(b), w);
  }
  static __m512 pre_scale(Acc acc) { return _mm512_cvtepi32_ps(acc); }
  static __m512 scale(const Args& a, const Epi& e, int64_t c0) {
    return _mm512_mul_ps(e.sa, _mm512_loadu_ps(a.w->scale.data() + c0));  // sa * s[c], as the reference
  }
  static float epi_sa(const Args& a) { return a.sa; }
};

}  // namespace

void dwconv_qu8_qc8w_c16__avx512vnni(const DwQ8Args& a) {
  check_dw_args(a);
  dw_run<DwQ8Ops>(a);
}

}  // namespace mpq::kernels
