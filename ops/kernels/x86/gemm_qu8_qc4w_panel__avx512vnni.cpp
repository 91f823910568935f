// W4A8 GEMM with AVX-512 VNNI, nibbles unpacked ONCE per packed panel (ops/kernels/lowp.h PackedQ4W).
//
// The register-unpacking kernel (gemm_qs8_qc4w__avx512vnni.cpp) unpacks every 64-byte nibble chunk again for
// every 12-row tile: 6 extra vector ops per 24 vpdpbusd, and it keeps two registers for the LUT and mask.
// Here each thread unpacks a weight panel (32 columns x Kp) into an int8 scratch panel in exactly the
// PackedQ8W panel layout ([Kp/4][32 cols][4 k] = Kp * 32 bytes), then runs every row tile of its share
// against that panel from L1 / L2, as the W8A8 kernel does. Only the int4 panel (Kp * 16 bytes) is read from
// the weights; the int8 copy is a transient per-thread scratch of at most the thread's panels (tile-major
// order, <= 512 KiB) or one panel (panel-major order).
//
// Unpacking a 64-byte chunk (k-step s of a panel): low nibbles = columns 0-15 x 4 k, high nibbles = columns
// 16-31 x 4 k, in the byte order of the int8 panel's two 64-byte halves; vpshufb through a 16-entry LUT
// nibble -> sign-extended int8 ([0..7, -8..-1]). The unpacked values are the int codes of PackedQ4W::at().
//
// Tile 14x32 (28 int32 accumulators + 2 weight vectors), accumulators start at -z * colsum[n] (exact int32),
// so they end at acc - zc. Activations: u8 A with K % 4 == 0 is read in place (rows of A, no packing pass);
// otherwise rows are packed into dwords of 4 (pack_a_u8x4: s8 -> u8 by xor 0x80, K tail zero).
// Epilogue straight from the accumulator registers, specialised at compile time on the output (f32 / u8)
// and the residual (none / f32 / u8): the op sequence of lowp_epilogue_scalar (y = fma(f, sa * s[n], bias),
// residual, max / min clamp -- always applied: with infinite bounds they are the identity on every non-NaN
// value, as in the reference -- then the u8 quantization), so outputs are bit-exact with the reference.
//
// Grouped weights (32 / 64 / 128 along K): the same 14x32 int32 tile per group; at each group end
// f = fma(float(acc_g - z * colsum_g), s_g, f) (g = 0: a plain multiply) into an f32 row block in L1, the
// documented order, then the epilogue with scale sa (the register kernel needs 4 registers per 16 outputs
// for this and is held to 7x32 tiles).
//
// conv_qu8_qc4w_14x32c4_panel__avx512vnni (ops/kernels/nhwc.h): the same tiles on an implicit im2col: each
// thread gathers the im2col rows of its A chunk (<= 384 KiB, in L2) from the NHWC image with 64-byte vector
// copies per kernel row (the whole 7x7x3 stem row is 7 masked copies of 21 bytes), row stride Kp with zero
// bytes K..Kp-1, and reads them in place -- no materialised col buffer and no separate packing pass.
#include <immintrin.h>

#include <cmath>
#include <limits>

#include "ops/kernels/nhwc.h"
#include "ops/kernels/x86/gemm_lowp_driver.h"

namespace mpq::kernels {
namespace {

constexpr int kMR = 14;            // rows per tile
constexpr int64_t kPanelQ8 = 128;  // bytes of one unpacked k-step (32 columns x 4 k)

// Unpacks panel chunks [s0, s1) of a nibble panel (src [ks][64 B]) into dst [ks][128 B] (int8 [32][4]).
inline void unpack_panel(const uint8_t* __restrict src, int64_t ks, int8_t* __restrict dst) {
  const __m512i lut = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1));
  const __m512i nib = _mm512_set1_epi8(0x0f);
  for (int64_t s = 0; s < ks; ++s) {
    const __m512i x = _mm512_load_si512(src + s * 64);
    _mm512_store_si512(dst + s * kPanelQ8, _mm512_shuffle_epi8(lut, _mm512_and_si512(x, nib)));
    _mm512_store_si512(dst + s * kPanelQ8 + 64,
                       _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(x, 4), nib)));
  }
}

enum class Res { none, f32, u8 };

// Per-panel constants of the tile: initial accumulators (-z * colsum), per-column scale sa * s[n], bias,
// column masks. Computed once per panel, read by every tile.
struct PanelCtx {
  __m512i nzc0, nzc1;             // per channel: -z * colsum[n]; grouped: z (the group's colsum is loaded per group)
  __m512 sc0, sc1, bias0, bias1;  // scale: sa * s[n] per channel, sa grouped
  __mmask16 m0, m1;
  const int32_t* colsum;  // grouped: colsum of group 0 at the panel's first column; group g at + g * gstride
  const float* scale;     // grouped: the same for the group scales
  int64_t gstride, spg;   // grouped: Np (between groups), k-steps per group
};

// Epilogue constants, held by value in the tile (a local: GCC keeps it in registers across the stores).
struct EpiK {
  __m512 lo, hi, inv_os, zp_f, res_scale;
  __m512i res_zp;
  const uint8_t* res;  // residual [M, ld_res] (f32 or u8), or null
  int64_t ld_res;
  uint8_t* C;  // [M, ldc] f32 or u8
  int64_t ldc;
};

// How much of the documented clamp / u8 saturation a call needs (chosen per call from the epilogue; every
// mode gives the bits of lowp_epilogue_scalar on every input, see tiles_for):
//   full:          y = min(max(y, lo), hi); u8: t = min(max(t, 0), 255), q = RNE(t), low byte
//   no_hi:         hi == +inf: after max(y, lo) y is never NaN, so min(y, +inf) == y is left out
//   no_hi_nonneg:  no_hi, and (u8) lo >= 0, zp >= 0, finite 1 / out_scale: t = y * inv + zp >= 0, not NaN, so
//                  max(t, 0) == t is left out
//   bounded:       (u8) as no_hi_nonneg but finite hi, and t <= fl(fl(hi * inv) + zp) < 2^31 (the
//                  roundings are monotonic): q = RNE(t) fits int32, max(t, 0) is t, and an unsigned saturating
//                  narrow (vpmovusdb) of q equals RNE(min(t, 255))
enum class Clamp { full, no_hi, no_hi_nonneg, bounded };

// C[m, n .. n+15]: lowp_epilogue_scalar's op sequence.
// f: the pre-scale value (float(acc - zc) per channel, the per-group sum grouped).
template <DType Out, Res R, Clamp Cl>
inline void store16(const EpiK& e, __m512 f, __m512 sc, __m512 b, int64_t m, int64_t n, __mmask16 mask) {
  __m512 y = _mm512_fmadd_ps(f, sc, b);
  const bool full = mask == __mmask16(0xffff);
  if constexpr (R == Res::f32) {
    const float* r = reinterpret_cast<const float*>(e.res) + m * e.ld_res + n;
    y = _mm512_add_ps(y, full ? _mm512_loadu_ps(r) : _mm512_maskz_loadu_ps(mask, r));
  } else if constexpr (R == Res::u8) {
    const uint8_t* rp = e.res + m * e.ld_res + n;
    const __m128i r8 = full ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(rp)) : _mm_maskz_loadu_epi8(mask, rp);
    const __m512i r = _mm512_sub_epi32(_mm512_cvtepu8_epi32(r8), e.res_zp);
    y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(r), e.res_scale, y);
  }
  y = _mm512_max_ps(y, e.lo);                                                           // y > lo ? y : lo
  if constexpr (Cl == Clamp::full || Cl == Clamp::bounded) y = _mm512_min_ps(y, e.hi);  // y < hi ? y : hi
  // Stores (and residual loads): plain ones for full 16-lane blocks (masked stores, and above all vpmovdb
  // straight to memory, cost several times a plain store on this CPU), masked only in the column tail.
  if constexpr (Out == DType::f32) {
    float* c = reinterpret_cast<float*>(e.C) + m * e.ldc + n;
    full ? _mm512_storeu_ps(c, y) : _mm512_mask_storeu_ps(c, mask, y);
  } else {
    __m512 t = _mm512_mul_ps(y, e.inv_os);
    t = _mm512_add_ps(t, e.zp_f);
    __m128i q;
    if constexpr (Cl == Clamp::bounded) {
      q = _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(t));
    } else {
      if constexpr (Cl == Clamp::full || Cl == Clamp::no_hi) t = _mm512_max_ps(t, _mm512_setzero_ps());
      t = _mm512_min_ps(t, _mm512_set1_ps(255.0f));
      q = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(t));  // RNE (default MXCSR)
    }
    uint8_t* c = e.C + m * e.ldc + n;
    full ? _mm_storeu_si128(reinterpret_cast<__m128i*>(c), q) : _mm_mask_storeu_epi8(c, mask, q);
  }
}

// Rows [r0, r0 + H) x the 32 columns of one panel (bp: the unpacked panel [ks][32][4]). Activation dword of
// row i, k-step s at a + i * rs + s * ss (in place: rs = lda, ss = 4; packed: rs = 4, ss = 4 * kMR). The k
// loop is written out in both branches: passed to a helper as array pointers, GCC kept c0 / c1 in memory.
// Per channel: int32 accumulators over all of K, starting at -z * colsum[n], f = float(acc - zc).
// Grouped (ops/kernels/lowp.h): int32 accumulators per group, then f = float(acc_0 - zc_0) * s_0 and
// f = fma(float(acc_g - zc_g), s_g, f) into an f32 row block in L1 (the registers hold the int32 tile).
// The epilogue of a tile from its pre-scale values f [H][32] (in L1).
template <int H, DType Out, Res R, Clamp Cl>
inline void tile_store(const EpiK& ek, const PanelCtx& pc, const float (*f)[32], int64_t r0, int64_t n0) {
  const EpiK e = ek;
  const PanelCtx p = pc;
  const bool two = p.m1 != 0;  // N tail of 16 columns or fewer (e.g. N = 16): no second half to write
  for (int i = 0; i < H; ++i) {
    store16<Out, R, Cl>(e, _mm512_load_ps(f[i]), p.sc0, p.bias0, r0 + i, n0, p.m0);
    if (two) store16<Out, R, Cl>(e, _mm512_load_ps(f[i] + 16), p.sc1, p.bias1, r0 + i, n0 + 16, p.m1);
  }
}

// acc[i] = init + k-steps [s0, s1) of activation row i x the unpacked panel (int32, exact). The accumulators
// leave the registers through plain unrolled stores right after the k loop, arrays local to this function, and
// it is not inlined: every other arrangement tried (an epilogue reading the registers directly, the k loop
// inlined into the per-group loop or sharing a float store with it) made GCC keep a memory copy of both
// arrays updated in the k loop at some tile heights (2-3x slower).
template <int H>
__attribute__((noinline)) void tile_ksteps(__m512i init0, __m512i init1, const uint8_t* __restrict a, int64_t rs,
                                           int64_t ss, const int8_t* __restrict bp, int64_t s0, int64_t s1,
                                           int32_t (*__restrict acc)[32]) {
  __m512i c0[H], c1[H];
#pragma GCC unroll 14
  for (int i = 0; i < H; ++i) c0[i] = init0, c1[i] = init1;
  for (int64_t s = s0; s < s1; ++s) {
    const __m512i b0 = _mm512_load_si512(bp + s * kPanelQ8);
    const __m512i b1 = _mm512_load_si512(bp + s * kPanelQ8 + 64);
    const uint8_t* as = a + s * ss;
#pragma GCC unroll 14
    for (int i = 0; i < H; ++i) {
      int32_t ad;
      std::memcpy(&ad, as + i * rs, 4);
      const __m512i ai = _mm512_set1_epi32(ad);
      c0[i] = _mm512_dpbusd_epi32(c0[i], ai, b0);
      c1[i] = _mm512_dpbusd_epi32(c1[i], ai, b1);
    }
  }
#pragma GCC unroll 14
  for (int i = 0; i < H; ++i) {
    _mm512_store_si512(acc[i], c0[i]);
    _mm512_store_si512(acc[i] + 16, c1[i]);
  }
}

// Per channel: int32 accumulators over all of K, starting at -z * colsum[n]; f = float(acc - zc).
template <int H>
inline void tile_acc(const PanelCtx& pc, const uint8_t* a, int64_t rs, int64_t ss, const int8_t* bp, int64_t ks,
                     float (*f)[32]) {
  alignas(64) int32_t acc[H][32];  // [H][32] int32
  tile_ksteps<H>(pc.nzc0, pc.nzc1, a, rs, ss, bp, 0, ks, acc);
  for (int i = 0; i < H; ++i) {
    _mm512_store_ps(f[i], _mm512_cvtepi32_ps(_mm512_load_si512(acc[i])));
    _mm512_store_ps(f[i] + 16, _mm512_cvtepi32_ps(_mm512_load_si512(acc[i] + 16)));
  }
}

// Grouped (ops/kernels/lowp.h): int32 accumulators per group, then f = float(acc_0 - zc_0) * s_0 and
// f = fma(float(acc_g - zc_g), s_g, f), zc_g = z * colsum_g, into the f32 row block f in L1.
template <int H>
inline void tile_acc_grouped(const PanelCtx& pc, const uint8_t* a, int64_t rs, int64_t ss, const int8_t* bp, int64_t ks,
                             float (*f)[32]) {
  alignas(64) int32_t acc[H][32];  // [H][32] int32 of one group
  const __m512i zero = _mm512_setzero_si512();
  for (int64_t gi = 0; gi * pc.spg < ks; ++gi) {
    tile_ksteps<H>(zero, zero, a, rs, ss, bp, gi * pc.spg, (gi + 1) * pc.spg, acc);
    const int32_t* cs = pc.colsum + gi * pc.gstride;  // [32]
    const float* sc = pc.scale + gi * pc.gstride;     // [32]
    const __m512i zc0 = _mm512_mullo_epi32(pc.nzc0, _mm512_loadu_si512(cs));
    const __m512i zc1 = _mm512_mullo_epi32(pc.nzc0, _mm512_loadu_si512(cs + 16));
    const __m512 s0 = _mm512_loadu_ps(sc), s1 = _mm512_loadu_ps(sc + 16);
    for (int i = 0; i < H; ++i) {
      const __m512 x0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512(acc[i]), zc0));
      const __m512 x1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512(acc[i] + 16), zc1));
      if (gi == 0) {
        _mm512_store_ps(f[i], _mm512_mul_ps(x0, s0));
        _mm512_store_ps(f[i] + 16, _mm512_mul_ps(x1, s1));
      } else {
        _mm512_store_ps(f[i], _mm512_fmadd_ps(x0, s0, _mm512_load_ps(f[i])));
        _mm512_store_ps(f[i] + 16, _mm512_fmadd_ps(x1, s1, _mm512_load_ps(f[i] + 16)));
      }
    }
  }
}

// Rows [r0, r0 + H) x the 32 columns of one panel; bp: the unpacked panel [ks][32][4]. Activation dword of
// row i, k-step s at a + i * rs + s * ss (in place: rs = lda, ss = 4; packed: rs = 4, ss = 4 * kMR).
template <int H, DType Out, Res R, Clamp Cl, bool Grouped>
void tile(const EpiK& ek, const PanelCtx& pc, const uint8_t* __restrict a, int64_t rs, int64_t ss,
          const int8_t* __restrict bp, int64_t ks, int64_t r0, int64_t n0) {
  alignas(64) float f[H][32];  // [H][32] f32 pre-scale values
  if constexpr (Grouped)
    tile_acc_grouped<H>(pc, a, rs, ss, bp, ks, f);
  else
    tile_acc<H>(pc, a, rs, ss, bp, ks, f);
  tile_store<H, Out, R, Cl>(ek, pc, f, r0, n0);
}

using TileFn = void (*)(const EpiK&, const PanelCtx&, const uint8_t*, int64_t, int64_t, const int8_t*, int64_t, int64_t,
                        int64_t);

template <DType Out, Res R, Clamp Cl, bool G, size_t... I>
constexpr std::array<TileFn, kMR + 1> tile_table(std::index_sequence<I...>) {
  return {nullptr, &tile<int(I) + 1, Out, R, Cl, G>...};
}
template <DType Out, Res R, Clamp Cl, bool G>
constexpr std::array<TileFn, kMR + 1> kTiles = tile_table<Out, R, Cl, G>(std::make_index_sequence<kMR>{});

template <DType Out, Clamp Cl, bool G>
const std::array<TileFn, kMR + 1>& tiles_res(const LowpEpilogue& ep) {
  if (!ep.residual) return kTiles<Out, Res::none, Cl, G>;
  return ep.residual_u8 ? kTiles<Out, Res::u8, Cl, G> : kTiles<Out, Res::f32, Cl, G>;
}

// Grouped weights take the full clamp only (their per-group float accumulation dominates the epilogue; fewer
// instantiations).
const std::array<TileFn, kMR + 1>& tiles_for(const LowpEpilogue& ep, bool grouped) {
  const bool f32 = ep.out == DType::f32;
  if (grouped) return f32 ? tiles_res<DType::f32, Clamp::full, true>(ep) : tiles_res<DType::u8, Clamp::full, true>(ep);
  const float inf = std::numeric_limits<float>::infinity();
  const bool hi_inf = ep.clamp_hi == inf;
  if (f32)
    return hi_inf ? tiles_res<DType::f32, Clamp::no_hi, false>(ep) : tiles_res<DType::f32, Clamp::full, false>(ep);
  // The same f32 operations as Epi / lowp_epilogue_scalar compute the bound (1 / out_scale, then * hi, + zp).
  const float inv = 1.0f / ep.out_scale;
  const bool nonneg = ep.clamp_lo >= 0.0f && std::isfinite(inv) && ep.out_zp >= 0;  // then t >= 0
  if (nonneg && hi_inf) return tiles_res<DType::u8, Clamp::no_hi_nonneg, false>(ep);
  if (nonneg && std::isfinite(ep.clamp_hi)) {
    float tmax = ep.clamp_hi * inv;
    tmax = tmax + float(ep.out_zp);
    if (tmax < 2147483520.0f) return tiles_res<DType::u8, Clamp::bounded, false>(ep);  // the largest float < 2^31
  }
  return hi_inf ? tiles_res<DType::u8, Clamp::no_hi, false>(ep) : tiles_res<DType::u8, Clamp::full, false>(ep);
}

PanelCtx panel_ctx(const Q4GemmArgs& g, int64_t p) {
  const PackedQ4W& w = *g.w;
  const int64_t n0 = p * 32;
  const int ncols = int(std::min<int64_t>(32, w.N - n0));
  const __m512i z = _mm512_set1_epi32(g.a_signed ? g.za + 128 : g.za);
  const __m512 sa = _mm512_set1_ps(g.sa);
  PanelCtx c;
  c.nzc0 = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_mullo_epi32(z, _mm512_loadu_si512(w.colsum.data() + n0)));
  c.nzc1 =
      _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_mullo_epi32(z, _mm512_loadu_si512(w.colsum.data() + n0 + 16)));
  c.sc0 = _mm512_mul_ps(sa, _mm512_loadu_ps(w.scale.data() + n0));  // sa * s[n], one f32 multiply
  c.sc1 = _mm512_mul_ps(sa, _mm512_loadu_ps(w.scale.data() + n0 + 16));
  c.colsum = w.colsum.data() + n0, c.scale = w.scale.data() + n0, c.gstride = w.Np, c.spg = w.steps_per_group();
  if (w.group != 0) c.nzc0 = c.nzc1 = z, c.sc0 = c.sc1 = sa;  // grouped: zc_g = z * colsum_g, scale sa
  c.m0 = lane_mask(ncols), c.m1 = lane_mask(ncols - 16);
  c.bias0 = g.ep.bias ? _mm512_maskz_loadu_ps(c.m0, g.ep.bias + n0) : _mm512_setzero_ps();
  c.bias1 = g.ep.bias ? _mm512_maskz_loadu_ps(c.m1, g.ep.bias + n0 + 16) : _mm512_setzero_ps();
  return c;
}

EpiK epi_consts(const Q4GemmArgs& g) {
  const LowpEpilogue& ep = g.ep;
  EpiK e;
  e.lo = _mm512_set1_ps(ep.clamp_lo), e.hi = _mm512_set1_ps(ep.clamp_hi);
  e.inv_os = _mm512_set1_ps(1.0f / ep.out_scale), e.zp_f = _mm512_set1_ps(float(ep.out_zp));
  e.res_scale = _mm512_set1_ps(ep.res_scale), e.res_zp = _mm512_set1_epi32(ep.res_zp);
  e.res = static_cast<const uint8_t*>(ep.residual), e.ld_res = ep.ld_res;
  e.C = static_cast<uint8_t*>(g.C), e.ldc = g.ldc;
  return e;
}

// Byte copies / fills of n bytes with 64-byte vector moves and one masked tail (AVX-512 BW).
inline void copy_bytes(uint8_t* __restrict dst, const uint8_t* __restrict src, int64_t n) {
  for (; n >= 64; n -= 64, dst += 64, src += 64) _mm512_storeu_si512(dst, _mm512_loadu_si512(src));
  if (n > 0) {
    const __mmask64 m = _cvtu64_mask64((uint64_t(1) << n) - 1);
    _mm512_mask_storeu_epi8(dst, m, _mm512_maskz_loadu_epi8(m, src));
  }
}
inline void fill_bytes(uint8_t* dst, __m512i v, int64_t n) {
  for (; n >= 64; n -= 64, dst += 64) _mm512_storeu_si512(dst, v);
  if (n > 0) _mm512_mask_storeu_epi8(dst, _cvtu64_mask64((uint64_t(1) << n) - 1), v);
}

// Byte vectors of VB = 16 / 32 / 64 bytes (the short-row im2col picks the narrowest that holds a kernel row:
// every unaligned store that crosses a cache line costs about twice one that does not, and a 64-byte store
// at an arbitrary offset almost always crosses one).
template <int VB>
struct BytesV;
template <>
struct BytesV<16> {
  using T = __m128i;
  static T set1(char c) { return _mm_set1_epi8(c); }
  static T load(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
  static T mask_load(T src, uint64_t m, const uint8_t* p) { return _mm_mask_loadu_epi8(src, __mmask16(m), p); }
  static void store(uint8_t* p, T v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }
};
template <>
struct BytesV<32> {
  using T = __m256i;
  static T set1(char c) { return _mm256_set1_epi8(c); }
  static T load(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static T mask_load(T src, uint64_t m, const uint8_t* p) { return _mm256_mask_loadu_epi8(src, __mmask32(m), p); }
  static void store(uint8_t* p, T v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
};
template <>
struct BytesV<64> {
  using T = __m512i;
  static T set1(char c) { return _mm512_set1_epi8(c); }
  static T load(const uint8_t* p) { return _mm512_loadu_si512(p); }
  static T mask_load(T src, uint64_t m, const uint8_t* p) { return _mm512_mask_loadu_epi8(src, _cvtu64_mask64(m), p); }
  static void store(uint8_t* p, T v) { _mm512_storeu_si512(p, v); }
};

// The im2col rows [r0, r1) of a conv whose kernel rows are contiguous and short (ldx == C, KW*C <= VB:
// the stems, 7 x 3 = 21 and 3 x 3 = 9 bytes): per kernel row one load of VB bytes at the window start and
// one store; lanes outside the image keep the zero point (masked load at the left / right border and near
// the end of the image: masked-off lanes never fault). Bytes past the kernel row are overwritten by the next
// store or the K tail.
template <int VB>
void im2col_short_rows_u8(const Q4ConvArgs& c, int64_t r0, int64_t r1, int64_t Kp, uint8_t* __restrict dst) {
  using V = BytesV<VB>;
  const ConvGeom& g = c.g;
  const int64_t seg = g.KW * g.C, K = g.KH * seg;
  const typename V::T pad = V::set1(char(c.za));
  const uint8_t* x_end = c.x + g.H * g.W * g.C;  // end of the image
  // Output columns whose whole window row lies inside the image: iw0 = ow * stride_w - pad_left >= 0 and
  // iw0 + KW <= W.
  const int64_t ow_lo = std::min<int64_t>(g.OW, (g.pad_left + g.stride_w - 1) / g.stride_w);
  const int64_t room = g.W - g.KW + g.pad_left;
  const int64_t ow_hi = room < 0 ? ow_lo : std::max(ow_lo, std::min<int64_t>(g.OW, room / g.stride_w + 1));
  const uint32_t zero = 0;
  // Pixel (oh, ow) at any column: masked loads of the valid bytes of each kernel row.
  auto border = [&](int64_t oh, int64_t ow, uint8_t* d) {
    const int64_t ih0 = oh * g.stride_h - g.pad_top, iw0 = ow * g.stride_w - g.pad_left;
    const int64_t kw0 = std::clamp<int64_t>(-iw0, 0, g.KW), kw1 = std::clamp<int64_t>(g.W - iw0, kw0, g.KW);
    const int64_t nv = (kw1 - kw0) * g.C;  // valid bytes of a kernel row, at offset kw0 * C
    const uint64_t valid = ((nv >= 64 ? ~uint64_t(0) : (uint64_t(1) << nv) - 1) << (kw0 * g.C));
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = ih0 + kh;
      const uint8_t* src = c.x + (ih * g.W + iw0) * g.C;  // pixel (ih, iw0): may lie left of the image
      V::store(d + kh * seg, ih >= 0 && ih < g.H ? V::mask_load(pad, valid, src) : pad);
    }
    std::memcpy(d + K, &zero, 4);  // K tail (Kp - K <= 3 bytes; spills into the next row, written next)
  };
  int64_t r = r0;
  while (r < r1) {
    const int64_t oh = r / g.OW, ow_end = std::min(g.OW, r1 - oh * g.OW);  // this output row's share
    const int64_t ih0 = oh * g.stride_h - g.pad_top;
    const int64_t kh0 = std::clamp<int64_t>(-ih0, 0, g.KH), kh1 = std::clamp<int64_t>(g.H - ih0, kh0, g.KH);
    for (int64_t ow = r - oh * g.OW; ow < ow_end; ++ow, ++r) {
      uint8_t* d = dst + (r - r0) * Kp;
      const uint8_t* src = c.x + (ih0 * g.W + ow * g.stride_w - g.pad_left) * g.C;  // window origin (ih0, iw0)
      if (ow < ow_lo || ow >= ow_hi || src + (kh1 - 1) * g.W * g.C + VB > x_end) {
        border(oh, ow, d);
        continue;
      }
      // Interior column: whole kernel rows, plain loads (bytes past a kernel row are overwritten by the
      // next store or the K tail).
      for (int64_t kh = 0; kh < kh0; ++kh) V::store(d + kh * seg, pad);
      for (int64_t kh = kh0; kh < kh1; ++kh) V::store(d + kh * seg, V::load(src + kh * g.W * g.C));
      for (int64_t kh = kh1; kh < g.KH; ++kh) V::store(d + kh * seg, pad);
      std::memcpy(d + K, &zero, 4);
    }
  }
}

// Rows [r0, r1) (output pixels) of the im2col matrix of c (columns (kh, kw, ch), as im2col_nhwc_ref) into
// dst [r1 - r0][Kp]: taps outside the image hold the zero point, bytes K..Kp-1 hold 0 (they meet the zero
// weight padding). dst must have 64 bytes of slack after the last row (whole-vector stores may spill past a
// row's end into bytes that are written next; rows are written in ascending order).
void im2col_rows_u8(const Q4ConvArgs& c, int64_t r0, int64_t r1, int64_t Kp, uint8_t* __restrict dst) {
  const ConvGeom& g = c.g;
  const int64_t seg = g.KW * g.C, K = g.KH * seg;  // bytes of one kernel row, of one im2col row
  if (g.ldx == g.C && seg <= 16) return im2col_short_rows_u8<16>(c, r0, r1, Kp, dst);
  if (g.ldx == g.C && seg <= 32) return im2col_short_rows_u8<32>(c, r0, r1, Kp, dst);
  if (g.ldx == g.C && seg <= 64) return im2col_short_rows_u8<64>(c, r0, r1, Kp, dst);
  const __m512i pad = _mm512_set1_epi8(char(c.za)), zero = _mm512_setzero_si512();
  int64_t oh = r0 / g.OW, ow = r0 % g.OW;
  for (int64_t r = r0; r < r1; ++r, dst += Kp) {
    const int64_t ih0 = oh * g.stride_h - g.pad_top, iw0 = ow * g.stride_w - g.pad_left;
    const int64_t kw0 = std::clamp<int64_t>(-iw0, 0, g.KW), kw1 = std::clamp<int64_t>(g.W - iw0, kw0, g.KW);
    uint8_t* d = dst;
    for (int64_t kh = 0; kh < g.KH; ++kh, d += seg) {
      const int64_t ih = ih0 + kh;
      if (ih < 0 || ih >= g.H) {
        fill_bytes(d, pad, seg);
        continue;
      }
      fill_bytes(d, pad, kw0 * g.C);
      const uint8_t* src = c.x + (ih * g.W + iw0 + kw0) * g.ldx;
      if (g.ldx == g.C)
        copy_bytes(d + kw0 * g.C, src, (kw1 - kw0) * g.C);
      else
        for (int64_t kw = kw0; kw < kw1; ++kw) copy_bytes(d + kw * g.C, src + (kw - kw0) * g.ldx, g.C);
      fill_bytes(d + kw1 * g.C, pad, (g.KW - kw1) * g.C);
    }
    if (Kp > K) _mm512_mask_storeu_epi8(dst + K, _cvtu64_mask64((uint64_t(1) << (Kp - K)) - 1), zero);  // K tail
    if (++ow == g.OW) ow = 0, ++oh;
  }
}

// Rows [m0, m1) x panels [p0, p1) on one thread. conv: the rows of A are gathered from its image (im2col)
// chunk by chunk; else from g.A.
void run_block(const Q4GemmArgs& g, const Q4ConvArgs* conv, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
  if (m1 <= m0 || p1 <= p0) return;
  const PackedQ4W& w = *g.w;
  const int64_t ks = w.Kp / 4, K = w.K, Kp = w.Kp;
  const int64_t rows = m1 - m0, ntiles = (rows + kMR - 1) / kMR;
  const int64_t base = rows / ntiles, extra = rows % ntiles;
  auto tile_start = [&](int64_t t) { return m0 + t * base + std::min(t, extra); };
  // A source: in place (u8 A, K % 4 == 0: rows of A), im2col (rows gathered into a row-major chunk buffer
  // [rows][Kp], read the same way) or packed (pack_a_u8x4 into [tiles][ks][kMR] dwords).
  const bool in_place = !conv && !g.a_signed && K % 4 == 0;
  const int64_t tile_bytes = ks * kMR * 4;  // A bytes of one tile
  // A chunk of up to ~384 KiB of A rows stays in L2 (in place: the same number of rows of A).
  const int64_t chunk = std::max<int64_t>(1, int64_t(384 * 1024) / tile_bytes);
  const int64_t panel_bytes = ks * kPanelQ8;
  // Small weights (all of this thread's unpacked panels fit in 512 KiB, half of L2): unpack them all once
  // and go tile-major, each C row block written once while its A rows stay in L1. Otherwise panel-major:
  // one panel is unpacked per A chunk and reused by every tile of the chunk.
  const bool tile_major = panel_bytes * (p1 - p0) <= 512 * 1024;
  thread_local LowpScratch a_scratch, w_scratch;
  // (+ 64 bytes: the slack im2col_rows_u8 needs)
  uint8_t* Ab =
      in_place ? nullptr : static_cast<uint8_t*>(a_scratch.get(size_t(tile_bytes * std::min(chunk, ntiles) + 64)));
  auto* Wp = static_cast<int8_t*>(w_scratch.get(size_t(panel_bytes * (tile_major ? p1 - p0 : 1))));
  const EpiK ek = epi_consts(g);
  const auto& fns = tiles_for(g.ep, w.group != 0);
  const int64_t rs = in_place ? g.lda : conv ? Kp : 4, ss = (in_place || conv) ? 4 : 4 * kMR;
  auto run_tile = [&](int64_t t, int64_t t0, const PanelCtx& pc, const int8_t* bp, int64_t p) {
    const int64_t r = tile_start(t);
    const uint8_t* a = in_place ? g.A + r * g.lda : conv ? Ab + (r - tile_start(t0)) * Kp : Ab + (t - t0) * tile_bytes;
    fns[size_t(tile_start(t + 1) - r)](ek, pc, a, rs, ss, bp, ks, r, p * 32);
  };
  if (tile_major)
    for (int64_t p = p0; p < p1; ++p) unpack_panel(w.w.data() + p * ks * 64, ks, Wp + (p - p0) * panel_bytes);
  std::vector<PanelCtx> ctx(size_t(p1 - p0));
  for (int64_t p = p0; p < p1; ++p) ctx[size_t(p - p0)] = panel_ctx(g, p);
  for (int64_t t0 = 0; t0 < ntiles; t0 += chunk) {
    const int64_t tn = std::min(chunk, ntiles - t0);
    if (conv) {
      im2col_rows_u8(*conv, tile_start(t0), tile_start(t0 + tn), Kp, Ab);
    } else if (!in_place) {
      for (int64_t t = 0; t < tn; ++t) {
        const int64_t r = tile_start(t0 + t);
        pack_a_u8x4<kMR>(g, r, int(tile_start(t0 + t + 1) - r), ks, K, reinterpret_cast<int32_t*>(Ab + t * tile_bytes));
      }
    }
    if (tile_major) {
      for (int64_t t = t0; t < t0 + tn; ++t)
        for (int64_t p = p0; p < p1; ++p) run_tile(t, t0, ctx[size_t(p - p0)], Wp + (p - p0) * panel_bytes, p);
    } else {
      for (int64_t p = p0; p < p1; ++p) {
        unpack_panel(w.w.data() + p * ks * 64, ks, Wp);
        for (int64_t t = t0; t < t0 + tn; ++t) run_tile(t, t0, ctx[size_t(p - p0)], Wp, p);
      }
    }
  }
}

void run(const Q4GemmArgs& g, const Q4ConvArgs* conv) {
  if (g.M == 0) return;
  int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (2.0 * double(g.M) * double(g.w->N) * double(g.w->K) < 4e6) nt = 1;
  const int64_t npanels = (g.w->N + 31) / 32, ntiles = (g.M + kMR - 1) / kMR;
  int tn = int(std::min<int64_t>(nt, npanels));
  int tm = std::max(1, int(std::min<int64_t>(nt / tn, ntiles)));
  // As LowpDriver::run: split M when there are many row tiles and few panels.
  if ((npanels < nt || (ntiles >= 8 * nt && npanels < 8 * nt)) && ntiles >= nt) tn = 1, tm = nt;
  const int used = tn * tm;
  auto work = [&](int id) {
    const int im = id / tn, in = id % tn;
    run_block(g, conv, g.M * im / tm, g.M * (im + 1) / tm, npanels * in / tn, npanels * (in + 1) / tn);
  };
  if (used == 1) {
    work(0);
    return;
  }
// the team can be smaller than asked (OMP_THREAD_LIMIT, OMP_DYNAMIC, a nested region): every block id
// runs on some thread of it
#pragma omp parallel num_threads(used)
  for (int id = omp_get_thread_num(); id < used; id += omp_get_num_threads()) work(id);
}

}  // namespace

void gemm_qu8_qc4w_14x32c4_panel__avx512vnni(const Q4GemmArgs& g) {
  check_q4_args(g);
  run(g, nullptr);
}

void conv_qu8_qc4w_14x32c4_panel__avx512vnni(const Q4ConvArgs& a) {
  check_q4_conv_args(a);
  run(q4_conv_gemm_args(a, nullptr), &a);
}

}  // namespace mpq::kernels
