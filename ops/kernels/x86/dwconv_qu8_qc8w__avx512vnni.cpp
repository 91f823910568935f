// NHWC depthwise conv W8A8 (u8 activations, s8 per-channel weights), AVX-512 VNNI.
//
// One tap of 16 channels = one vpdpwssd on dwords: the activations widened and shifted, x - za (in
// [-255, 255], exact in the low word; high word 0 or -1), times the weights as (w, 0) word pairs, so each
// dword gains (x - za) * w + hi * 0 exactly (int32, vpdpwssd does not saturate). Padded taps are skipped,
// i.e. contribute 0 as in the reference. Then f = float(acc), scale = sa * s[c] (one f32 multiply) and the
// LowpEpilogue: bit-exact with dwconv_qu8_qc8w_ref. Tiling as ops/kernels/x86/dwconv_driver.h.
#include "ops/kernels/x86/dwconv_driver.h"

namespace mpq::kernels {
namespace {

struct DwQ8Ops {
  using Args = DwQ8Args;
  using Acc = __m512i;
  using WVec = __m512i;
  using XVec = __m512i;
  using Elem = uint8_t;
  struct Ctx {
    __m512i za;
  };
  static Ctx ctx(const Args& a) { return {_mm512_set1_epi32(a.za)}; }
  // packed s8 [KH*KW][Cp]: 16 aligned bytes per block -> dwords (w as int16, high word 0)
  static WVec load_w(const Args& a, int64_t t, int64_t c0) {
    const __m128i b = _mm_load_si128(reinterpret_cast<const __m128i*>(a.w->w.data() + t * a.w->Cp + c0));
    return _mm512_and_si512(_mm512_cvtepi8_epi32(b), _mm512_set1_epi32(0xffff));
  }
  // x - za in [-255, 255]: its low word is exact as int16 (the high word, 0 or -1, meets w's zero word)
  template <bool Full>
  static XVec load_x(const uint8_t* x, __mmask16 m, const Ctx& k) {
    const __m128i b = Full ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(x)) : _mm_maskz_loadu_epi8(m, x);
    return _mm512_sub_epi32(_mm512_cvtepu8_epi32(b), k.za);
  }
  static Acc zero() { return _mm512_setzero_si512(); }
  static Acc fma(Acc acc, XVec x, WVec w) { return _mm512_dpwssd_epi32(acc, x, w); }  // acc + (x - za) * w
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
