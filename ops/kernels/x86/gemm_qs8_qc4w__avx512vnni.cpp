// W4A8 GEMM with AVX-512 VNNI: int4 weights unpacked to int8 in registers, then vpdpbusd.
//
// Packed weights (ops/kernels/lowp.h PackedQ4W): one 64-byte chunk per (panel, k-step) holds 128
// nibbles; low nibbles = columns 0-15 x 4 k, high nibbles = columns 16-31 x 4 k, in exactly the byte
// order vpdpbusd wants. Unpack per k-step: 1 load, vpand / vpsrlw+vpand, and 2 vpshufb through a
// 16-entry LUT nibble -> sign-extended int8 ([0..7, -8..-1]).
//
// Scales:
//   per channel (group == 0): one int32 accumulation over K, tile 12x32 (24 int32 accumulators +
//     2 weight vectors + LUT + nibble mask = 28 zmm); y = fma(float(acc - zc), sa * s[n], bias) ...;
//   per group (32/64/128 along K): int32 accumulation over the group, then
//     f = fma(float(acc_g - z * colsum_g), s_g, f) into f32 accumulators (g = 0: a plain multiply),
//     tile 7x32 (14 int32 + 14 f32 accumulators + 4 = 32 zmm).
//     then y = fma(f, sa, bias) ... (ops/kernels/lowp.h).
#include <immintrin.h>

#include "ops/kernels/x86/gemm_lowp_driver.h"

namespace mpq::kernels {
namespace {

// Tiles of at most this many rows split their k-steps over two accumulator sets (q4_steps): with 2R chains
// each vpdpbusd waits for the previous one's result. Measured on Zen 5 (bench_membound, M = 1, weights in
// cache): 13.2 -> 10.1 us on BERT's FFN down, 360 -> 325 us on 4096x16384.
constexpr int kQ4SplitChainRows = 2;

// One k-step: c0/c1[i] += unpacked weights of step s x activations of row i.
template <int R>
inline void q4_step(const uint8_t* __restrict bp, const int32_t* __restrict Ap, int MR, int64_t s, __m512i lut,
                    __m512i nib, __m512i* c0, __m512i* c1) {
  // 4 KiB ahead: weights streamed from DRAM (M <= 8) need that many bytes in flight per thread; measured
  // on the 2-core Zen 5 (bench_membound cold, 4096x4096): 1 KiB ahead 0.8-1.0 ms, 2 KiB 0.74-0.93,
  // 4 KiB 0.59-0.67, 8 KiB 0.66-0.89 per call at M = 1 and 4. Past the panel end it is a harmless hint.
  _mm_prefetch(reinterpret_cast<const char*>(bp + (s + 64) * 64), _MM_HINT_T0);
  const __m512i x = _mm512_load_si512(bp + s * 64);
  const __m512i b0 = _mm512_shuffle_epi8(lut, _mm512_and_si512(x, nib));                        // cols 0-15
  const __m512i b1 = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(x, 4), nib));  // cols 16-31
  const int32_t* a = Ap + s * MR;
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i) {
    const __m512i ai = _mm512_set1_epi32(a[i]);
    c0[i] = _mm512_dpbusd_epi32(c0[i], ai, b0);
    c1[i] = _mm512_dpbusd_epi32(c1[i], ai, b1);
  }
}

// c0/c1[i] += sum over k-steps [s0, s1) of unpacked weights x activations of row i.
template <int R>
inline void q4_steps(const uint8_t* __restrict bp, const int32_t* __restrict Ap, int MR, int64_t s0, int64_t s1,
                     __m512i* c0, __m512i* c1) {
  const __m512i lut = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1));
  const __m512i nib = _mm512_set1_epi8(0x0f);
  int64_t s = s0;
  if constexpr (R <= kQ4SplitChainRows) {
    // Few rows (a GEMV): 2R accumulator chains leave vpdpbusd waiting on its own latency each step, so odd
    // steps go to a second set of chains and both sets are added at the end (int32 sums: the same result
    // in any order).
    __m512i d0[R], d1[R];
    for (int i = 0; i < R; ++i) d0[i] = d1[i] = _mm512_setzero_si512();
    for (; s + 2 <= s1; s += 2) {
      q4_step<R>(bp, Ap, MR, s, lut, nib, c0, c1);
      q4_step<R>(bp, Ap, MR, s + 1, lut, nib, d0, d1);
    }
    for (int i = 0; i < R; ++i) c0[i] = _mm512_add_epi32(c0[i], d0[i]), c1[i] = _mm512_add_epi32(c1[i], d1[i]);
  }
  for (; s < s1; ++s) q4_step<R>(bp, Ap, MR, s, lut, nib, c0, c1);
}

template <int MR_, bool Grouped>
struct Q4Kernel {
  using Args = Q4GemmArgs;
  using AElem = int32_t;
  static constexpr int MR = MR_;
  static int64_t ksteps(const Args& g) { return g.w->Kp / 4; }
  static int64_t N(const Args& g) { return g.w->N; }
  static int64_t panel_bytes(const Args& g) { return g.w->Kp * 16; }
  static double ops(const Args& g) { return 2.0 * double(g.M) * double(g.w->N) * double(g.w->K); }
  static void pack_a(const Args& g, int64_t r0, int rows, int32_t* Ap) {
    pack_a_u8x4<MR>(g, r0, rows, ksteps(g), g.w->K, Ap);
  }

  template <int R>
  static void tile(const Args& g, const int32_t* __restrict Ap, int64_t r0, int64_t panel, int ncols) {
    const PackedQ4W& w = *g.w;
    const int64_t ks = w.Kp / 4, spg = w.steps_per_group();
    const uint8_t* bp = w.w.data() + panel * ks * 64;  // nibbles [ks][64 B]
    const int64_t n0 = panel * 32;
    const __m512i z = _mm512_set1_epi32(g.a_signed ? g.za + 128 : g.za);
    alignas(64) float acc[R][32];  // [R][32] f32 pre-sa values (leave registers by a plain store)
    if constexpr (!Grouped) {
      __m512i c0[R], c1[R];
#pragma GCC unroll 14
      for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm512_setzero_si512();
      q4_steps<R>(bp, Ap, MR, 0, ks, c0, c1);
      alignas(64) int32_t iacc[R][32];  // [R][32] int32
#pragma GCC unroll 14
      for (int i = 0; i < R; ++i) {
        _mm512_store_si512(iacc[i], c0[i]);
        _mm512_store_si512(iacc[i] + 16, c1[i]);
      }
      const __m512i zc0 = _mm512_mullo_epi32(z, _mm512_loadu_si512(w.colsum.data() + n0));
      const __m512i zc1 = _mm512_mullo_epi32(z, _mm512_loadu_si512(w.colsum.data() + n0 + 16));
      for (int i = 0; i < R; ++i) {  // f = float(acc - zc); the scale sa * s[n] is applied in the epilogue
        _mm512_store_ps(acc[i], _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512(iacc[i]), zc0)));
        _mm512_store_ps(acc[i] + 16, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512(iacc[i] + 16), zc1)));
      }
    } else {
      __m512 f0[R], f1[R];  // f32 accumulators, row i: columns 0-15, 16-31 (set by group 0)
#pragma GCC unroll 14
      for (int i = 0; i < R; ++i) f0[i] = f1[i] = _mm512_setzero_ps();
      for (int64_t gi = 0; gi < w.ngroups; ++gi) {
        __m512i c0[R], c1[R];
#pragma GCC unroll 14
        for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm512_setzero_si512();
        q4_steps<R>(bp, Ap, MR, gi * spg, (gi + 1) * spg, c0, c1);
        const int32_t* cs = w.colsum.data() + gi * w.Np + n0;  // [32]
        const float* sc = w.scale.data() + gi * w.Np + n0;     // [32]
        const __m512i zc0 = _mm512_mullo_epi32(z, _mm512_loadu_si512(cs));
        const __m512i zc1 = _mm512_mullo_epi32(z, _mm512_loadu_si512(cs + 16));
        const __m512 s0 = _mm512_loadu_ps(sc), s1 = _mm512_loadu_ps(sc + 16);
        if (gi == 0) {
#pragma GCC unroll 14
          for (int i = 0; i < R; ++i) {
            f0[i] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(c0[i], zc0)), s0);
            f1[i] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(c1[i], zc1)), s1);
          }
        } else {
#pragma GCC unroll 14
          for (int i = 0; i < R; ++i) {
            f0[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(c0[i], zc0)), s0, f0[i]);
            f1[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(c1[i], zc1)), s1, f1[i]);
          }
        }
      }
#pragma GCC unroll 14
      for (int i = 0; i < R; ++i) {
        _mm512_store_ps(acc[i], f0[i]);
        _mm512_store_ps(acc[i] + 16, f1[i]);
      }
    }
    const Epi e(g.ep, g.sa);
    const __mmask16 m0 = lane_mask(ncols), m1 = lane_mask(ncols - 16);
    const __m512 bias0 = e.bias16(n0, m0), bias1 = e.bias16(n0 + 16, m1);
    // Per channel: y = fma(f, sa * s[n], bias); per group: y = fma(f, sa, bias).
    const __m512 sc0 = Grouped ? e.sa : _mm512_mul_ps(e.sa, _mm512_loadu_ps(w.scale.data() + n0));
    const __m512 sc1 = Grouped ? e.sa : _mm512_mul_ps(e.sa, _mm512_loadu_ps(w.scale.data() + n0 + 16));
    for (int i = 0; i < R; ++i) {
      e.store16s(_mm512_load_ps(acc[i]), sc0, bias0, r0 + i, n0, m0, g.C, g.ldc);
      e.store16s(_mm512_load_ps(acc[i] + 16), sc1, bias1, r0 + i, n0 + 16, m1, g.C, g.ldc);
    }
  }
};

}  // namespace

void gemm_qu8_qc4w_12x32c4__avx512vnni(const Q4GemmArgs& g) {
  check_q4_args(g);
  if (g.w->group == 0)
    LowpDriver<Q4Kernel<12, false>>::run(g);
  else
    LowpDriver<Q4Kernel<7, true>>::run(g);
}

}  // namespace mpq::kernels
