// AVX2 (+ FMA, F16C) transformer row kernels (ops/kernels/transformer.h), twins of
// ops/kernels/x86/transformer_f32__avx512.cpp for AVX2-only machines and MPQ_ISA=avx2: 8 lanes per step, the
// documented op order. Tails: loads by vmaskmovps (masked-off lanes are not read and read as 0), stores of
// a partial step go through a 32-byte stack buffer and copy only the valid elements, so nothing past cols
// is read or written. exp and erf are the AVX-512 file's polynomials:
//   exp(x): x clamped to [-104, 88.7]; n = round(x log2 e), r = x - n ln2 (ln2 split hi/lo, exact first
//           product), Taylor degree 7 on |r| <= ln2/2. No vscalefps: 2^n is applied as 2^(n >> 1) times
//           2^(n - (n >> 1)), each a normal f32 built from exponent bits (n in [-150, 128]); the first
//           multiply is exact, so the only rounding is the second one, as in vscalefps (exp of a masked
//           key, -10000, is exactly 0 as in std::exp; gradual underflow like std::exp below -87.3).
//           Measured: at most 1 ulp from std::exp at 2.5e7 points of [-104, 88.7], 0 exactly where std::exp
//           is 0, and the same results as the AVX-512 exp.
//   erf(x): the XLA / Eigen rational approximation (odd degree-13 numerator, even degree-8 denominator) on
//           x clamped to [-3.8, 3.8], p / q by a true division (vdivps). Measured max |error| 3.5e-7 against
//           the double erf at 2e7 points of [-10, 10]; gelu built on it is within 7.0e-7 (|gelu| + 1) of the
//           double gelu and within 8.2e-7 (|ref| + 1) of the std::erf reference (swept in
//           tests/test_kernels_transformer.cpp).
// Against the reference twins: rows_map without gelu and layer_norm are bit-exact in the sweeps; softmax
// f32 within 2^-19 relative up to 768 columns (the reference's in-order f32 row sum dominates; the AVX-512
// version deviates the same).
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "ops/kernels/transformer.h"
#include "ops/kernels/x86/transcendental_f32.h"

namespace mpq::kernels {
namespace {

// A step of min(n, 8) lanes: the count and the vmaskmovps lane mask.
struct Tail {
  int64_t n;
  __m256i m;
};

inline Tail tail(int64_t n) {
  alignas(32) static const int32_t kOnes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  if (n >= 8) return {8, _mm256_set1_epi32(-1)};
  return {n, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kOnes + 8 - n))};
}

// Lanes of t as 0 / all ones for float blends.
inline __m256 lanes(const Tail& t) { return _mm256_castsi256_ps(t.m); }

// Loads the t.n valid floats at p; the other lanes are 0 and their memory is not touched.
inline __m256 load8(const float* p, const Tail& t) {
  return t.n == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, t.m);
}

inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(poly::kExpMin)), _mm256_set1_ps(poly::kExpMax));
  const __m256 n =
      _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(poly::kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(poly::kLn2Hi), x);  // exact
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(poly::kLn2Lo), r);
  __m256 p = _mm256_set1_ps(poly::kExpTaylor[0]);
  for (int i = 1; i < 8; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(poly::kExpTaylor[i]));
  // p * 2^n = (p * 2^n1) * 2^n2 with n1 = floor(n / 2), n2 = n - n1, both in [-75, 64]: normal scales.
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

inline __m256 erf256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-poly::kErfClamp)), _mm256_set1_ps(poly::kErfClamp));
  const __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(poly::kErfP[0]);
  for (int i = 1; i < 7; ++i) p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(poly::kErfP[i]));
  p = _mm256_mul_ps(x, p);
  __m256 q = _mm256_set1_ps(poly::kErfQ[0]);
  for (int i = 1; i < 5; ++i) q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(poly::kErfQ[i]));
  return _mm256_div_ps(p, q);
}

// Stores y's first t.n lanes at (r, c) in o's format, with the scalar store's rounding.
inline void store8(const ActOut& o, int64_t r, int64_t c, __m256 y, const Tail& t) {
  if (o.dt == DType::f32) {
    float* dst = static_cast<float*>(o.p) + r * o.ld + c;
    if (t.n == 8)
      _mm256_storeu_ps(dst, y);
    else
      _mm256_maskstore_ps(dst, t.m, y);
    return;
  }
  __m128i v;  // 8 u16 (f16, bf16) or 8 u8 in the low half (u8)
  if (o.dt == DType::f16) {
    v = _mm256_cvtps_ph(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  } else if (o.dt == DType::bf16) {  // f32_to_bf16: (u + 0x7fff + lsb) >> 16; NaN -> (u >> 16) | 0x40
    const __m256i u = _mm256_castps_si256(y), hi = _mm256_srli_epi32(u, 16);
    const __m256i lsb = _mm256_and_si256(hi, _mm256_set1_epi32(1));
    __m256i b = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(y, y, _CMP_UNORD_Q));
    b = _mm256_blendv_epi8(b, _mm256_or_si256(hi, _mm256_set1_epi32(0x40)), nan);
    v = _mm_packus_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));  // all in [0, 0xffff]
  } else {  // u8: clamp(nearbyint(y / scale) + zp, 0, 255)
    __m256 q =
        _mm256_round_ps(_mm256_div_ps(y, _mm256_set1_ps(o.scale)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm256_add_ps(q, _mm256_set1_ps(float(o.zp)));
    q = _mm256_min_ps(_mm256_max_ps(q, _mm256_setzero_ps()), _mm256_set1_ps(255.0f));
    const __m256i i = _mm256_cvtps_epi32(q);
    const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    v = _mm_packus_epi16(w, w);
  }
  const size_t eb = size_t(act_bytes(o.dt));
  uint8_t* dst = static_cast<uint8_t*>(o.p) + size_t(r * o.ld + c) * eb;
  if (t.n == 8 && eb == 2) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), v);
  } else if (t.n == 8) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), v);
  } else {
    alignas(16) uint8_t buf[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(buf), v);
    std::memcpy(dst, buf, size_t(t.n) * eb);
  }
}

// int input: float(int32(x) + corr) (exact int32 add), else x.
inline __m256 load_in(const float* x, const int32_t* row_corr, int64_t r, const Tail& t) {
  const __m256 v = load8(x, t);
  if (!row_corr) return v;
  return _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_cvtps_epi32(v), _mm256_set1_epi32(row_corr[r])));
}

// The 8 lanes of v added to a 4-lane double accumulator (both halves widened exactly).
inline __m256d widen_add(__m256d acc, __m256 v) {
  acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  return _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

inline double hsum(__m256d v) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

std::vector<float>& row_buffer(int64_t n) {  // per-thread [n] f32 (+ one step of slack), grow-only
  thread_local std::vector<float> buf;
  if (int64_t(buf.size()) < n + 8) buf.resize(size_t(n + 8));
  return buf;
}

}  // namespace

void layer_norm_rows__avx2(const LayerNormArgs& a, int64_t r0, int64_t r1) {
  const int64_t D = a.cols;
  float* v = row_buffer(D).data();  // [D + 8] one row's input (lanes past D are 0)
  for (int64_t r = r0; r < r1; ++r) {
    __m256d s = _mm256_setzero_pd();
    for (int64_t c = 0; c < D; c += 8) {
      const Tail t = tail(D - c);
      __m256 x = load8(a.x + r * a.ldx + c, t);
      if (a.bias) x = _mm256_add_ps(x, load8(a.bias + c, t));
      if (a.res) x = _mm256_add_ps(x, load8(a.res + r * a.ldr + c, t));
      _mm256_storeu_ps(v + c, x);
      s = widen_add(s, x);  // lanes past D are 0
    }
    const float mean = float(hsum(s) / double(D));
    const __m256 mv = _mm256_set1_ps(mean);
    __m256d q = _mm256_setzero_pd();
    for (int64_t c = 0; c < D; c += 8) {
      const __m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_loadu_ps(v + c), mv), lanes(tail(D - c)));
      const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(d)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1));
      q = _mm256_add_pd(q, _mm256_mul_pd(lo, lo));
      q = _mm256_add_pd(q, _mm256_mul_pd(hi, hi));
    }
    const float inv = float(1.0 / std::sqrt(hsum(q) / double(D) + double(a.eps)));
    const __m256 iv = _mm256_set1_ps(inv);
    for (int64_t c = 0; c < D; c += 8) {
      const Tail t = tail(D - c);
      __m256 y = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(v + c), mv), iv), load8(a.gamma + c, t));
      y = _mm256_add_ps(y, load8(a.beta + c, t));
      store8(a.out, r, c, y, t);
      if (a.out2.p) store8(a.out2, r, c, y, t);
    }
  }
}

void softmax_rows__avx2(const SoftmaxArgs& a, int64_t r0, int64_t r1) {
  const int64_t C = a.cols;
  float* v = row_buffer(C).data();  // [C + 8] one row's logits, then exponentials
  const __m256 sc = _mm256_set1_ps(a.scale), ninf = _mm256_set1_ps(-INFINITY);
  for (int64_t r = r0; r < r1; ++r) {
    __m256 mx = ninf;
    for (int64_t c = 0; c < C; c += 8) {
      const Tail t = tail(C - c);
      __m256 x = load_in(a.x + r * a.ldx + c, a.row_corr, r, t);
      if (a.scale != 1.0f) x = _mm256_mul_ps(x, sc);
      if (a.mask) x = _mm256_add_ps(x, load8(a.mask + c, t));
      _mm256_storeu_ps(v + c, x);
      mx = _mm256_max_ps(mx, _mm256_blendv_ps(ninf, x, lanes(t)));
    }
    const __m256 mxv = _mm256_set1_ps(hmax(mx));
    __m256 sum = _mm256_setzero_ps();
    for (int64_t c = 0; c < C; c += 8) {
      const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(v + c), mxv));
      _mm256_storeu_ps(v + c, e);
      sum = _mm256_add_ps(sum, _mm256_and_ps(e, lanes(tail(C - c))));
    }
    const __m256 inv = _mm256_set1_ps(1.0f / hsum(sum));
    for (int64_t c = 0; c < C; c += 8) store8(a.out, r, c, _mm256_mul_ps(_mm256_loadu_ps(v + c), inv), tail(C - c));
  }
}

void rows_map__avx2(const RowMapArgs& a, int64_t r0, int64_t r1) {
  const __m256 sc = _mm256_set1_ps(a.scale), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  const __m256 inv_sqrt2 = _mm256_set1_ps(0.70710678118654752f);
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = 0; c < a.cols; c += 8) {
      const Tail t = tail(a.cols - c);
      __m256 v = load_in(a.x + r * a.ldx + c, a.row_corr, r, t);
      if (a.scale != 1.0f) v = _mm256_mul_ps(v, sc);
      if (a.bias) v = _mm256_add_ps(v, load8(a.bias + c, t));
      if (a.gelu) v = _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, erf256(_mm256_mul_ps(v, inv_sqrt2))));
      store8(a.out, r, c, v, t);
    }
}

}  // namespace mpq::kernels
