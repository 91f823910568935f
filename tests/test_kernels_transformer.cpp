// Transformer row kernels (ops/kernels/transformer.h): every registered implementation this CPU has,
// against the reference twin, over edge shapes (every width 1..17, so every 8- and 16-lane tail, odd widths up
// to 3071, BERT's 768; leading dimensions > cols for inputs, residuals and outputs), every output format and
// every option.
// Tolerances (the reference uses std::exp / std::erf and sums in order):
//   rows_map without gelu: bit-exact in every format (identical f32 ops, identical rounding).
//   layer_norm: f32 out within 2^-21 (|ref| + 1) (the double sums run in another order; the mean/inv can
//     differ by one f32 ulp); f16 / bf16 / u8 outputs within one unit of their format.
//   softmax: f32 within 2^-18 sqrt(max(1, cols / 768)) |ref| + 1e-30 (exp within 2 ulp, the f32 row sum in
//     another order: the reference adds 768 values one by one, whose typical rounding error, sqrt(768) 2^-24 =
//     2^-19.2, is where both SIMD versions were measured (2^-19.0), so 2^-19 had no margin; that error grows
//     as sqrt(cols), hence the factor past 768 columns);
//   gelu: within 2^-20 (|ref| + 1) (the erf approximations' measured errors, 8.4e-7 AVX-512 and 7.0e-7 AVX2,
//     are printed below);
//   f16 / bf16 / u8 outputs of softmax / gelu / layer_norm: within one unit of the format plus the f32
//   tolerance (an f32 difference can move a value across a rounding boundary).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "ops/kernels/transformer.h"
#include "tests/kernel_test_util.h"

using namespace mpq;
using namespace mpq::kernels;
using mpq::testing::rand_f;

namespace {

const int64_t kCols[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 31, 33, 72, 100, 129, 768, 3071};
const int64_t kRows[] = {1, 3, 13};
const DType kFmts[] = {DType::f32, DType::f16, DType::bf16, DType::u8};

// An output buffer [rows, ld] of fmt, prefilled with a sentinel so writes outside [rows, cols] show.
struct OutBuf {
  std::vector<uint8_t> bytes;
  ActOut out;
  OutBuf(DType f, int64_t rows, int64_t cols, int64_t pad, float scale = 0.05f, int32_t zp = 100) {
    out.dt = f;
    out.ld = cols + pad;
    out.scale = scale;
    out.zp = zp;
    bytes.assign(size_t(rows * out.ld * act_bytes(f)), 0xA5);
    out.p = bytes.data();
  }
  float value(int64_t r, int64_t c) const {  // decoded element
    const int64_t i = r * out.ld + c;
    switch (out.dt) {
      case DType::f32: {
        float v;
        std::memcpy(&v, bytes.data() + 4 * i, 4);
        return v;
      }
      case DType::f16:
      case DType::bf16: {
        uint16_t h;
        std::memcpy(&h, bytes.data() + 2 * i, 2);
        return out.dt == DType::f16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
      case DType::u8:
        return float(bytes[size_t(i)]);
      default:
        FAIL("not an activation format: ", dtype_name(out.dt));
    }
    return 0;
  }
};

// One unit of the output format at value v (u8: one quantization step).
float unit(DType f, float v) {
  const float a = std::max(std::fabs(v), 1e-30f);
  switch (f) {
    case DType::f32:
      return 0;
    case DType::f16:
      return std::max(std::ldexp(1.0f, std::ilogb(a) - 10), std::ldexp(1.0f, -24));
    case DType::bf16:
      return std::ldexp(1.0f, std::ilogb(a) - 7);
    case DType::u8:
      return 1.0f;
    default:
      FAIL("not an activation format: ", dtype_name(f));
  }
  return 0;
}

// got vs want over [rows, cols]; f32_tol(ref_f32) for f32; one format unit otherwise (exact: 0).
template <class Tol>
void compare(const OutBuf& got, const OutBuf& want, int64_t rows, int64_t cols, bool exact, Tol f32_tol,
             const std::string& what) {
  int64_t bad = 0;
  std::string first;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < got.out.ld; ++c) {
      const float g = got.value(r, c), w = want.value(r, c);
      bool ok;
      if (c >= cols) {  // padding untouched
        const size_t b = size_t(act_bytes(got.out.dt));
        ok = std::memcmp(got.bytes.data() + (r * got.out.ld + c) * b, want.bytes.data() + (r * got.out.ld + c) * b,
                         b) == 0;
      } else if (exact) {
        ok = (g == w) || (std::isnan(g) && std::isnan(w));
      } else if (got.out.dt == DType::f32) {
        ok = std::fabs(g - w) <= f32_tol(w);
      } else {  // one unit of the format on top of the f32 error that may move a rounding boundary
        ok = std::fabs(g - w) <= unit(got.out.dt, w) + f32_tol(w);
      }
      if (!ok && bad++ == 0) first = fmt::format("(r={}, c={}) got {} want {}", r, c, g, w);
    }
  CHECK_MESSAGE(bad == 0, what << ": " << bad << " mismatches, first " << first);
}

template <class List>
std::vector<typename List::Impl> impls_here(const List& list) {
  std::vector<typename List::Impl> v;
  for (const auto& i : list.impls())
    if (isa_enabled(i.isa) && i.isa != Isa::ref) v.push_back(i);
  return v;
}

}  // namespace

TEST_CASE("transformer kernels: rows_map (bias, scale, int input, gelu) vs reference, every format") {
  std::mt19937 rng(7);
  int cases = 0;
  for (const auto& impl : impls_here(rows_map_list()))
    for (int64_t rows : kRows)
      for (int64_t cols : kCols)
        for (int variant = 0; variant < 4; ++variant)
          for (DType f : kFmts) {
            const bool gelu = variant >= 2, int_in = variant == 1 || variant == 3;
            const int64_t ldx = cols + 5;
            std::vector<float> x = rand_f(size_t(rows * ldx), rng, -6.0f, 6.0f);  // [rows, ldx]
            std::vector<int32_t> corr(static_cast<size_t>(rows));                 // [rows]
            if (int_in) {
              for (auto& v : x) v = std::nearbyint(v * 100000.0f);  // exact integers |x| <= 6e5
              for (auto& c : corr) c = int32_t(rng() % 2000001) - 1000000;
            }
            const std::vector<float> bias = rand_f(size_t(cols), rng, -1.0f, 1.0f);  // [cols]
            RowMapArgs a;
            a.rows = rows, a.cols = cols, a.x = x.data(), a.ldx = ldx;
            a.row_corr = int_in ? corr.data() : nullptr;
            a.scale = int_in ? 3.1e-6f : 1.0f;
            a.bias = variant % 2 == 0 ? bias.data() : nullptr;
            a.gelu = gelu;
            OutBuf got(f, rows, cols, 3), want(f, rows, cols, 3);
            a.out = got.out;
            impl.fn(a, 0, rows);
            a.out = want.out;
            rows_map_ref(a, 0, rows);
            compare(
                got, want, rows, cols, !gelu, [](float w) { return std::ldexp(std::fabs(w) + 1.0f, -20); },
                fmt::format("{} rows={} cols={} variant={} fmt={}", impl.name, rows, cols, variant, dtype_name(f)));
            ++cases;
          }
  MESSAGE(cases << " rows_map cases");
  CHECK(cases > 0);
}

TEST_CASE("transformer kernels: store rounding at ties, NaN, inf and subnormals is bit-exact in every format") {
  // rows_map without gelu / bias / scale stores x unchanged, so every byte must equal the reference's.
  const uint32_t kBits[] = {
      0x3f808000u, 0x3f818000u,
      0xbf808000u, 0xbf818000u,  // bf16 ties: to even (down), to even (up), negated
      0x7f7f8000u, 0x7f7fffffu,
      0x3f801000u, 0x3f803000u,  // bf16 tie / round to inf; f16 ties 1 + 2^-11, 1 + 3 2^-11
      0x33000000u, 0x33400000u,
      0x33c00000u, 0x477ff000u,  // f16: 2^-25 -> 0, 1.5 2^-25, 3 2^-25 -> 2 2^-24, 65520 -> inf
      0x477fefffu, 0x7fc00000u,
      0x7f800001u, 0xffc12345u,  // 65519.99; quiet, signalling, negative NaN
      0x7f800000u, 0xff800000u,
      0x00000000u, 0x80000000u,  // +-inf, +-0
      0x00000001u, 0x00400000u,
      0x80400001u, 0x00808000u,  // f32 subnormals, bf16 tie at the smallest normal
  };
  std::vector<float> sp;  // specials, repeated so a row has full steps and a tail
  for (int k = 0; k < 2; ++k)
    for (uint32_t b : kBits) sp.push_back(f32_from_bits(b));
  std::vector<float> q;  // u8: y / 0.5 = k + 0.5 ties (half to even) and clamped values, zero point 100
  for (int k = -260; k <= 260; k += 7) q.push_back(float(k) * 0.5f + 0.25f);
  // and non-finite values: NaN stores code 0 (what max(NaN, 0) gives the SIMD twins), +-inf clamp
  const size_t nan_at = q.size();
  for (uint32_t b : {0x7fc00000u, 0xffc12345u, 0x7f800000u, 0xff800000u}) q.push_back(f32_from_bits(b));
  int cases = 0;
  for (const auto& impl : impls_here(rows_map_list()))
    for (DType f : kFmts) {
      const std::vector<float>& x = f == DType::u8 ? q : sp;  // [2, cols] (the second row is the first reversed)
      const int64_t cols = int64_t(x.size());
      std::vector<float> xx(x);
      xx.insert(xx.end(), x.rbegin(), x.rend());
      RowMapArgs a;
      a.rows = 2, a.cols = cols, a.x = xx.data(), a.ldx = cols;
      OutBuf got(f, 2, cols, 3, 0.5f, 100), want(f, 2, cols, 3, 0.5f, 100);
      a.out = got.out;
      impl.fn(a, 0, 2);
      a.out = want.out;
      rows_map_ref(a, 0, 2);
      CHECK_MESSAGE(got.bytes == want.bytes, fmt::format("{} fmt={}: bytes differ", impl.name, dtype_name(f)));
      if (f == DType::u8) {
        CHECK(want.value(0, int64_t(nan_at)) == 0.0f);        // NaN
        CHECK(want.value(0, int64_t(nan_at) + 1) == 0.0f);    // negative NaN
        CHECK(want.value(0, int64_t(nan_at) + 2) == 255.0f);  // +inf
        CHECK(want.value(0, int64_t(nan_at) + 3) == 0.0f);    // -inf
      }
      ++cases;
    }
  CHECK(cases > 0);
}

TEST_CASE("transformer kernels: the gelu erf approximation against std::erf over [-10, 10]") {
  // only the SIMD erfs need measuring; the reference is std::erf
  const auto impls = impls_here(rows_map_list());
  if (impls.empty()) MESSAGE("no SIMD rows_map on this CPU: nothing to measure");
  const int64_t n = 200001;
  std::vector<float> x(static_cast<size_t>(n));  // [1, n]
  for (int64_t i = 0; i < n; ++i) x[size_t(i)] = -10.0f + 20.0f * float(i) / float(n - 1);
  for (const auto& impl : impls) {
    std::vector<float> got(static_cast<size_t>(n));  // [1, n]
    RowMapArgs a;
    a.rows = 1, a.cols = n, a.x = x.data(), a.ldx = n, a.gelu = true;
    a.out = {DType::f32, got.data(), n};
    impl.fn(a, 0, 1);
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double v = x[size_t(i)];
      const double exact = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
      worst = std::max(worst, std::fabs(got[size_t(i)] - exact) / (std::fabs(exact) + 1.0));
    }
    MESSAGE(std::string(impl.name) << ": gelu max |err| / (|gelu| + 1) vs double erf: " << worst);
    CHECK(worst < 1e-6);  // measured 8.4e-7 (avx512) / 7.0e-7 (avx2), where 1 + erf cancels for negative x
  }
}

TEST_CASE("transformer kernels: softmax (scale, int input, key mask) vs reference, every format") {
  std::mt19937 rng(11);
  int cases = 0;
  for (const auto& impl : impls_here(softmax_rows_list()))
    for (int64_t rows : kRows)
      for (int64_t cols : kCols)
        for (int variant = 0; variant < 3; ++variant)
          for (DType f : kFmts) {
            const int64_t ldx = cols + 2;
            std::vector<float> x = rand_f(size_t(rows * ldx), rng, -8.0f, 8.0f);  // [rows, ldx]
            std::vector<int32_t> corr(static_cast<size_t>(rows));                 // [rows]
            std::vector<float> mask(size_t(cols), 0.0f);                          // [cols]
            for (int64_t c = 0; c < cols; ++c)
              if (c % 3 == 2) mask[size_t(c)] = -10000.0f;
            SoftmaxArgs a;
            a.rows = rows, a.cols = cols, a.x = x.data(), a.ldx = ldx;
            if (variant == 1) {
              for (auto& v : x) v = std::nearbyint(v * 200000.0f);
              for (auto& c : corr) c = int32_t(rng() % 200001) - 100000;
              a.row_corr = corr.data();
              a.scale = 1.0f / 200000.0f;
            } else if (variant == 2) {
              a.scale = 0.125f;
              a.mask = mask.data();
            }
            OutBuf got(f, rows, cols, 1, 1.0f / 255.0f, 0), want(f, rows, cols, 1, 1.0f / 255.0f, 0);
            a.out = got.out;
            impl.fn(a, 0, rows);
            a.out = want.out;
            softmax_rows_ref(a, 0, rows);
            compare(
                got, want, rows, cols, false,
                [cols](float w) {
                  return std::ldexp(std::fabs(w), -18) * std::sqrt(std::max(1.0f, float(cols) / 768.0f)) + 1e-30f;
                },
                fmt::format("{} rows={} cols={} variant={} fmt={}", impl.name, rows, cols, variant, dtype_name(f)));
            if (variant == 2 && f == DType::f32)  // masked keys get exactly 0 (exp underflow), as std::exp
              for (int64_t c = 2; c < cols; c += 3) CHECK(got.value(0, c) == 0.0f);
            ++cases;
          }
  MESSAGE(cases << " softmax cases");
  CHECK(cases > 0);
}

TEST_CASE("transformer kernels: layer norm (bias, residual, second output) vs reference, every format") {
  std::mt19937 rng(13);
  int cases = 0;
  for (const auto& impl : impls_here(layer_norm_rows_list()))
    for (int64_t rows : kRows)
      for (int64_t cols : kCols)
        for (int variant = 0; variant < 3; ++variant)
          for (DType f : kFmts) {
            const int64_t ldx = cols + 3, ldr = cols + 7;
            const std::vector<float> x = rand_f(size_t(rows * ldx), rng, -3.0f, 5.0f);    // [rows, ldx]
            const std::vector<float> res = rand_f(size_t(rows * ldr), rng, -2.0f, 2.0f);  // [rows, ldr]
            const std::vector<float> bias = rand_f(size_t(cols), rng, -1.0f, 1.0f);       // [cols]
            const std::vector<float> g = rand_f(size_t(cols), rng, 0.5f, 1.5f);           // [cols]
            const std::vector<float> b = rand_f(size_t(cols), rng, -0.5f, 0.5f);          // [cols]
            LayerNormArgs a;
            a.rows = rows, a.cols = cols, a.x = x.data(), a.ldx = ldx;
            a.bias = variant >= 1 ? bias.data() : nullptr;
            a.res = variant == 2 ? res.data() : nullptr;
            a.ldr = ldr;
            a.gamma = g.data(), a.beta = b.data();
            a.eps = 1e-12f;
            OutBuf got(DType::f32, rows, cols, 2), want(DType::f32, rows, cols, 2);
            OutBuf got2(f, rows, cols, 1), want2(f, rows, cols, 1);
            a.out = got.out, a.out2 = got2.out;
            impl.fn(a, 0, rows);
            a.out = want.out, a.out2 = want2.out;
            layer_norm_rows_ref(a, 0, rows);
            const auto tol = [](float w) { return std::ldexp(std::fabs(w) + 1.0f, -21); };
            const std::string what =
                fmt::format("{} rows={} cols={} variant={} fmt={}", impl.name, rows, cols, variant, dtype_name(f));
            compare(got, want, rows, cols, false, tol, what + " out");
            compare(got2, want2, rows, cols, false, tol, what + " out2");
            ++cases;
          }
  MESSAGE(cases << " layer_norm cases");
  CHECK(cases > 0);
}

TEST_CASE("transformer kernels: threaded entry points equal one reference pass, bad arguments are named") {
  std::mt19937 rng(5);
  const int64_t rows = 128, cols = 300;                                        // rows * cols > the threading threshold
  const std::vector<float> x = rand_f(size_t(rows * cols), rng, -4.0f, 4.0f);  // [rows, cols]
  const std::vector<float> g(size_t(cols), 1.0f), b(size_t(cols), 0.0f);       // [cols]
  OutBuf got(DType::u8, rows, cols, 0), want(DType::u8, rows, cols, 0);
  RowMapArgs a;
  a.rows = rows, a.cols = cols, a.x = x.data(), a.ldx = cols, a.out = got.out;
  rows_map(a);
  a.out = want.out;
  rows_map_ref(a, 0, rows);
  CHECK(got.bytes == want.bytes);

  LayerNormArgs ln;
  ln.rows = rows, ln.cols = cols, ln.x = x.data(), ln.ldx = cols, ln.gamma = g.data(), ln.beta = b.data();
  ln.out = {DType::f32, nullptr, cols};
  CHECK_THROWS_WITH(layer_norm_rows(ln), doctest::Contains("out is null"));
  ln.out.p = got.bytes.data(), ln.out.ld = cols - 1;
  CHECK_THROWS_WITH(layer_norm_rows(ln), doctest::Contains("out.ld"));
  SoftmaxArgs sm;
  sm.rows = 1, sm.cols = cols, sm.x = x.data(), sm.ldx = cols - 1;
  CHECK_THROWS_WITH(softmax_rows(sm), doctest::Contains("ldx"));
  a.out = {DType::u8, got.bytes.data(), cols, 0.0f, 0};
  CHECK_THROWS_WITH(rows_map(a), doctest::Contains("scale"));
}
