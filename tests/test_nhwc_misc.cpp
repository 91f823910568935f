// NHWC im2col, pooling, conversions and residual add (ops/kernels/nhwc.h): references against independent
// oracles, every registered implementation this CPU has against the reference, BIT-EXACT (all of these
// are exact or perform the documented f32 ops in the documented order).
//   im2col: col x W^T (double) vs ops::conv2d, |diff| <= 1e-5 * (1 + sum |x||w|); pad value checked.
//   max pool: f32 vs ops::max_pool2d exactly; f16 / u8 vs the f32 reference on the widened values.
//   global average pool: vs a double mean, |diff| <= 2^-20 * (1 + mean |x|) (f32 sum of <= 64 terms).
//   quantize / requantize: dequantize(quantize(x)) == quant::fake_quant_act_value(x) bit for bit.
//   f32 <-> f16: core f32_to_f16 / f16_to_f32 (themselves tested over all 65536 halves in test_dtype).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "ops/kernels/nhwc.h"
#include "ops/ops.h"
#include "quant/observers.h"
#include "tests/kernel_test_util.h"

using namespace mpq;
using mpq::testing::for_each_fast_impl;
using mpq::testing::rand_f;
using mpq::testing::rand_u8;
using namespace mpq::kernels;

namespace {

// Runs the reference and every fast entry of `list` with output buffer `set(a, ptr)` of `bytes` bytes
// (prefilled 0xAB, so untouched padding must stay 0xAB) and compares all bytes.
template <class List, class Args, class Set>
void impls_vs_ref(const List& list, Args a, size_t bytes, Set set, const std::string& what) {
  std::vector<uint8_t> ref(bytes, 0xAB);
  set(a, ref.data());
  list.impls().back().fn(a);
  for_each_fast_impl(list, [&](const auto& impl) {
    std::vector<uint8_t> got(bytes, 0xAB);
    set(a, got.data());
    impl.fn(a);
    size_t i = 0;
    while (i < bytes && got[i] == ref[i]) ++i;
    CHECK_MESSAGE(i == bytes, fmt::format("{} {}: first differing output byte {} of {}", impl.name, what, i, bytes));
  });
}

struct GeomCase {
  int64_t H, W, C, K, stride, pt, pl, pb, pr;
};
std::vector<GeomCase> geom_cases() {
  return {{5, 7, 3, 3, 1, 1, 1, 1, 1},     {8, 8, 17, 3, 2, 0, 0, 1, 1},
          {9, 6, 1, 2, 2, 0, 0, 1, 0},     {11, 11, 3, 7, 2, 2, 3, 3, 2},
          {4, 5, 33, 1, 1, 0, 0, 0, 0},    {7, 3, 96 + 5, 3, 2, 1, 1, 1, 1},
          {1, 1, 16, 3, 1, 1, 1, 1, 1},    {6, 9, 64, 3, 2, 1, 0, 1, 1},
          {112, 112, 24, 3, 2, 0, 0, 1, 1}};  // last: above the threading thresholds (pool, im2col)
}
ConvGeom make_geom(const GeomCase& c, int64_t ld_extra) {
  return conv_geom(c.H, c.W, c.C, c.C + ld_extra, c.K, c.K, c.stride, c.stride, c.pt, c.pl, c.pb, c.pr);
}
std::string geom_str(const ConvGeom& g) {
  return fmt::format("H={} W={} C={} ldx={} K={}x{} s={} pads(t{} l{} b{} r{})", g.H, g.W, g.C, g.ldx, g.KH, g.KW,
                     g.stride_h, g.pad_top, g.pad_left, g.pad_bottom, g.pad_right);
}

// ------------------------------------------------------------------------------------------ im2col
TEST_CASE("nhwc: im2col reference gives conv2d through a GEMM, implementations bit-exact") {
  std::mt19937 rng(21);
  for (const GeomCase& c : geom_cases()) {
    const ConvGeom g = make_geom(c, c.C % 4);
    const int64_t M = g.OH * g.OW, Kc = g.KH * g.KW * g.C, O = 5;
    const std::vector<float> x = rand_f(size_t(g.H * g.W * g.ldx), rng, -1.0f, 1.0f);      // [H, W, ldx]
    const std::vector<float> w = rand_f(size_t(O * g.C * g.KH * g.KW), rng, -1.0f, 1.0f);  // [O, C, KH, KW]
    std::vector<float> col(size_t(M * Kc));                                                // [M, Kc]
    const float zero = 0.0f;
    im2col_nhwc_ref({x.data(), 4, g, &zero, col.data(), Kc});
    std::vector<float> xn(size_t(g.C * g.H * g.W));  // [1, C, H, W]
    for (int64_t ch = 0; ch < g.C; ++ch)
      for (int64_t p = 0; p < g.H * g.W; ++p) xn[size_t(ch * g.H * g.W + p)] = x[size_t(p * g.ldx + ch)];
    ops::Conv2dParams cp;
    cp.stride_h = cp.stride_w = g.stride_h;
    cp.pad_top = g.pad_top, cp.pad_left = g.pad_left, cp.pad_bottom = g.pad_bottom, cp.pad_right = g.pad_right;
    const std::vector<float> want = ops::conv2d(Tensor::from_vector({1, g.C, g.H, g.W}, xn),
                                                Tensor::from_vector({O, g.C, g.KH, g.KW}, w), Tensor::zeros({O}), cp)
                                        .contiguous()
                                        .to_vector();  // [O, OH*OW]
    for (int64_t o = 0; o < O; ++o)
      for (int64_t m = 0; m < M; ++m) {
        double s = 0, sa = 0;
        for (int64_t kh = 0; kh < g.KH; ++kh)
          for (int64_t kw = 0; kw < g.KW; ++kw)
            for (int64_t ch = 0; ch < g.C; ++ch) {
              const double a = col[size_t(m * Kc + (kh * g.KW + kw) * g.C + ch)];
              const double b = w[size_t(((o * g.C + ch) * g.KH + kh) * g.KW + kw)];
              s += a * b, sa += std::fabs(a * b);
            }
        const double wv = want[size_t(o * M + m)];
        if (!(std::fabs(s - wv) <= 1e-5 * (1 + sa)))
          FAIL(fmt::format("{} o={} m={}: {} vs {}", geom_str(g), o, m, s, wv));
      }
    // u8 / f16 / f32 element sizes, a pad value that is not 0, ldcol > Kc: every fast entry vs reference
    const std::vector<uint8_t> xb = rand_u8(size_t(g.H * g.W * g.ldx) * 4, rng);
    for (int64_t eb : {1, 2, 4}) {
      const uint32_t pad = 0x9d9d9d9du;
      const int64_t ldcol = Kc + 3;
      Im2colArgs a{xb.data(), eb, g, &pad, nullptr, ldcol};
      impls_vs_ref(
          im2col_nhwc_list(), a, size_t(M * ldcol * eb), [](Im2colArgs& a, void* p) { a.col = p; },
          fmt::format("{} elem_bytes={}", geom_str(g), eb));
    }
  }
  // pad value lands exactly where the window leaves the image
  const ConvGeom g = conv_geom(2, 2, 1, 0, 3, 3, 1, 1, 1, 1, 1, 1);
  const uint8_t x[4] = {1, 2, 3, 4}, pad = 200;
  std::vector<uint8_t> col(4 * 9);
  im2col_nhwc(x, 1, g, &pad, col.data());
  const std::vector<uint8_t> row0 = {200, 200, 200, 200, 1, 2, 200, 3, 4};
  CHECK(std::vector<uint8_t>(col.begin(), col.begin() + 9) == row0);
  CHECK_THROWS_WITH_AS(im2col_nhwc(x, 3, g, &pad, col.data()), doctest::Contains("elem_bytes"), Error);
}

// ------------------------------------------------------------------------------------------ pooling
TEST_CASE("nhwc: max pool f32 / f16 / u8 vs max_pool2d, implementations bit-exact") {
  std::mt19937 rng(22);
  for (const GeomCase& c : geom_cases()) {
    if (c.pt >= c.K || c.pl >= c.K || c.pb >= c.K || c.pr >= c.K) continue;
    const ConvGeom g = make_geom(c, c.C % 3);
    const int64_t M = g.OH * g.OW, ldy = g.C + 1;
    std::vector<float> x = rand_f(size_t(g.H * g.W * g.ldx), rng, -4.0f, -1.0f);  // negative: padding must not win
    std::vector<uint8_t> xq = rand_u8(x.size(), rng);
    std::vector<uint16_t> xh(x.size());
    for (size_t i = 0; i < x.size(); ++i) xh[i] = f32_to_f16(x[i]);
    std::vector<float> xn(size_t(g.C * g.H * g.W));  // [1, C, H, W]
    for (int64_t ch = 0; ch < g.C; ++ch)
      for (int64_t p = 0; p < g.H * g.W; ++p) xn[size_t(ch * g.H * g.W + p)] = x[size_t(p * g.ldx + ch)];
    ops::Pool2dParams pp;
    pp.kernel_h = pp.kernel_w = g.KH, pp.stride_h = pp.stride_w = g.stride_h;
    pp.pad_top = g.pad_top, pp.pad_left = g.pad_left, pp.pad_bottom = g.pad_bottom, pp.pad_right = g.pad_right;
    const std::vector<float> want =
        ops::max_pool2d(Tensor::from_vector({1, g.C, g.H, g.W}, xn), pp).contiguous().to_vector();
    std::vector<float> y(size_t(M * ldy));  // [OH*OW, ldy]
    maxpool_nhwc_ref({DType::f32, x.data(), g, y.data(), ldy});
    for (int64_t m = 0; m < M; ++m)
      for (int64_t ch = 0; ch < g.C; ++ch)
        if (y[size_t(m * ldy + ch)] != want[size_t(ch * M + m)])
          FAIL(fmt::format("{} m={} c={}: {} vs {}", geom_str(g), m, ch, y[size_t(m * ldy + ch)],
                           want[size_t(ch * M + m)]));
    // f16 and u8 references against the f32 reference on the widened values
    std::vector<float> xw(x.size()), yw(y.size());
    for (size_t i = 0; i < x.size(); ++i) xw[i] = f16_to_f32(xh[i]);
    std::vector<uint16_t> yh(y.size());
    maxpool_nhwc_ref({DType::f32, xw.data(), g, yw.data(), ldy});
    maxpool_nhwc_ref({DType::f16, xh.data(), g, yh.data(), ldy});
    for (int64_t i = 0; i < M * ldy; ++i)
      if (i % ldy < g.C) REQUIRE(f16_to_f32(yh[size_t(i)]) == yw[size_t(i)]);
    for (size_t i = 0; i < x.size(); ++i) xw[i] = float(xq[i]);
    std::vector<uint8_t> yq(y.size());
    maxpool_nhwc_ref({DType::f32, xw.data(), g, yw.data(), ldy});
    maxpool_nhwc_ref({DType::u8, xq.data(), g, yq.data(), ldy});
    for (int64_t i = 0; i < M * ldy; ++i)
      if (i % ldy < g.C) REQUIRE(float(yq[size_t(i)]) == yw[size_t(i)]);
    for (DType dt : {DType::f32, DType::f16, DType::u8}) {
      const void* src = dt == DType::f32   ? static_cast<const void*>(x.data())
                        : dt == DType::f16 ? static_cast<const void*>(xh.data())
                                           : static_cast<const void*>(xq.data());
      const size_t eb = dt == DType::f32 ? 4 : dt == DType::f16 ? 2 : 1;
      impls_vs_ref(
          maxpool_nhwc_list(), MaxPoolArgs{dt, src, g, nullptr, ldy}, size_t(M * ldy) * eb,
          [](MaxPoolArgs& a, void* p) { a.y = p; }, fmt::format("{} {}", geom_str(g), dtype_name(dt)));
    }
  }
  const ConvGeom bad = conv_geom(4, 4, 1, 0, 2, 2, 1, 1, 2, 0, 0, 0);
  float x[16] = {}, y[64] = {};
  CHECK_THROWS_WITH_AS(maxpool_nhwc({DType::f32, x, bad, y, 1}), doctest::Contains("padding"), Error);
}

TEST_CASE("nhwc: global average pool vs double mean, implementations bit-exact") {
  std::mt19937 rng(23);
  for (int64_t HW : {1, 7, 49}) {
    for (int64_t C : {1, 3, 17, 64, 101}) {
      const int64_t ldx = C + C % 5;
      const std::vector<float> x = rand_f(size_t(HW * ldx), rng, -3.0f, 5.0f);
      const std::vector<uint8_t> xq = rand_u8(size_t(HW * ldx), rng);
      std::vector<uint16_t> xh(x.size());
      for (size_t i = 0; i < x.size(); ++i) xh[i] = f32_to_f16(x[i]);
      const float s = 0.037f;
      const int32_t zp = 91;
      for (DType dt : {DType::f32, DType::f16, DType::u8}) {
        const void* src = dt == DType::f32   ? static_cast<const void*>(x.data())
                          : dt == DType::f16 ? static_cast<const void*>(xh.data())
                                             : static_cast<const void*>(xq.data());
        GapArgs a{dt, src, HW, C, ldx, s, zp, nullptr};
        std::vector<float> y(static_cast<size_t>(C));
        a.y = y.data();
        global_avgpool_nhwc_ref(a);
        for (int64_t c = 0; c < C; ++c) {
          double m = 0, ma = 0;
          for (int64_t p = 0; p < HW; ++p) {
            const size_t i = size_t(p * ldx + c);
            const double v = dt == DType::f32   ? x[i]
                             : dt == DType::f16 ? f16_to_f32(xh[i])
                                                : (double(xq[i]) - zp) * double(s);
            m += v / double(HW), ma += std::fabs(v) / double(HW);
          }
          REQUIRE_MESSAGE(std::fabs(y[size_t(c)] - m) <= 0x1p-20 * (1 + ma),
                          fmt::format("{} HW={} C={} c={}: {} vs {}", dtype_name(dt), HW, C, c, y[size_t(c)], m));
        }
        impls_vs_ref(
            global_avgpool_nhwc_list(), a, size_t(C) * 4, [](GapArgs& a, void* p) { a.y = static_cast<float*>(p); },
            fmt::format("{} HW={} C={}", dtype_name(dt), HW, C));
      }
    }
  }
}

// ------------------------------------------------------------------------------------------ conversions
// Values that exercise rounding: ties of x / s, the clamp edges, huge values, infinities, signed zero.
std::vector<float> quant_probe(float s, int32_t zp, std::mt19937& rng, size_t n) {
  std::vector<float> v = rand_f(n, rng, -300.0f * s, 300.0f * s);
  for (int k = -260; k <= 260; ++k) v.push_back((float(k) + 0.5f) * s), v.push_back(float(k) * s);
  for (float e : {0.0f, -0.0f, 1e30f, -1e30f, std::numeric_limits<float>::infinity(),
                  -std::numeric_limits<float>::infinity(), float(255 - zp) * s, float(-zp) * s})
    v.push_back(e);
  return v;
}

TEST_CASE("nhwc: quantize / dequantize / requantize equal fake_quant_act, implementations bit-exact") {
  std::mt19937 rng(24);
  for (const auto& [s, zp] : std::vector<std::pair<float, int32_t>>{{0.0235f, 0}, {0.1f, 128}, {3.0f / 255, 255}}) {
    const std::vector<float> x = quant_probe(s, zp, rng, 70000);  // > 2^16: threaded path
    const int64_t n = int64_t(x.size());
    std::vector<uint8_t> q(x.size());
    quantize_f32_u8_ref({n, x.data(), q.data(), s, zp});
    const ActQuantParams p{s, zp};
    for (size_t i = 0; i < x.size(); ++i) {
      const float fq = quant::fake_quant_act_value(x[i], p);
      REQUIRE_MESSAGE(f32_bits(dequantize_value(q[i], s, zp)) == f32_bits(fq + 0.0f),
                      fmt::format("x={:.9g} s={} zp={}: q={} fake_quant={}", x[i], s, zp, q[i], fq));
    }
    const float nan = std::numeric_limits<float>::quiet_NaN();
    CHECK(quantize_value(nan, s, zp) == 0);
    for (int64_t len : {n, int64_t(1), int64_t(15), int64_t(17), int64_t(63)}) {
      impls_vs_ref(
          quantize_f32_u8_list(), CvtArgs{len, x.data(), nullptr, s, zp}, size_t(len),
          [](CvtArgs& a, void* p) { a.y = p; }, fmt::format("quantize n={}", len));
      impls_vs_ref(
          dequantize_u8_f32_list(), CvtArgs{len, q.data(), nullptr, s, zp}, size_t(len) * 4,
          [](CvtArgs& a, void* p) { a.y = p; }, fmt::format("dequantize n={}", len));
    }
    std::vector<float> d(x.size());
    dequantize_u8_f32_ref({n, q.data(), d.data(), s, zp});
    for (size_t i = 0; i < x.size(); ++i) REQUIRE(d[i] == (float(q[i]) - float(zp)) * s);
    // requantize: every input byte, to other parameters
    std::vector<uint8_t> all(256), rq(256);
    for (int i = 0; i < 256; ++i) all[size_t(i)] = uint8_t(i);
    const float s2 = s * 1.37f;
    const int32_t zp2 = (zp + 77) % 256;
    CvtArgs ra{256, all.data(), rq.data(), s, zp, s2, zp2};
    requantize_u8_u8_ref(ra);
    for (int i = 0; i < 256; ++i) {
      const float fq = quant::fake_quant_act_value(dequantize_value(uint8_t(i), s, zp), {s2, zp2});
      REQUIRE(f32_bits(dequantize_value(rq[size_t(i)], s2, zp2)) == f32_bits(fq + 0.0f));
    }
    impls_vs_ref(
        requantize_u8_u8_list(), ra, 256, [](CvtArgs& a, void* p) { a.y = p; }, "requantize");
  }
  float xs[4] = {};
  uint8_t qs[4] = {};
  CHECK_THROWS_WITH_AS(quantize_f32_u8(xs, 4, 0.0f, 0, qs), doctest::Contains("scales must be > 0"), Error);
  CHECK_THROWS_WITH_AS(quantize_f32_u8(nullptr, 4, 1.0f, 0, qs), doctest::Contains("null"), Error);
}

TEST_CASE("nhwc: f32 <-> f16 conversions, implementations bit-exact") {
  std::mt19937 rng(25);
  std::vector<uint16_t> h(65536 + 7);
  for (size_t i = 0; i < h.size(); ++i) h[i] = uint16_t(i * 40503u);  // all 65536 bit patterns (odd multiplier)
  std::vector<float> f(h.size());
  convert_f16_f32_ref({int64_t(h.size()), h.data(), f.data()});
  for (size_t i = 0; i < h.size(); ++i) REQUIRE(f32_bits(f[i]) == f32_bits(f16_to_f32(h[i])));
  std::vector<float> x = rand_f(5000, rng, -70000.0f, 70000.0f);
  for (size_t i = 0; i + 1 < f.size(); ++i)
    if (std::isfinite(f[i]) && std::isfinite(f[i + 1])) x.push_back(0.5f * (f[i] + f[i + 1]));  // midpoints
  std::vector<uint16_t> y(x.size());
  convert_f32_f16_ref({int64_t(x.size()), x.data(), y.data()});
  for (size_t i = 0; i < x.size(); ++i) REQUIRE(y[i] == f32_to_f16(x[i]));
  for (int64_t len : {int64_t(x.size()), int64_t(1), int64_t(9), int64_t(31)})
    impls_vs_ref(
        convert_f32_f16_list(), CvtArgs{len, x.data(), nullptr}, size_t(len) * 2, [](CvtArgs& a, void* p) { a.y = p; },
        fmt::format("f32->f16 n={}", len));
  for (int64_t len : {int64_t(h.size()), int64_t(1), int64_t(9), int64_t(31)})
    impls_vs_ref(
        convert_f16_f32_list(), CvtArgs{len, h.data(), nullptr}, size_t(len) * 4, [](CvtArgs& a, void* p) { a.y = p; },
        fmt::format("f16->f32 n={}", len));
}

TEST_CASE("nhwc: NCHW -> NHWC transpose and residual add with clamp, implementations bit-exact") {
  std::mt19937 rng(26);
  for (const auto& [C, H, W] : std::vector<std::array<int64_t, 3>>{{3, 5, 7}, {3, 17, 33}, {1, 2, 2}, {20, 9, 4}}) {
    const std::vector<float> x = rand_f(size_t(C * H * W), rng, -1.0f, 1.0f);
    const int64_t ldy = C + 1;
    const Tensor xt = Tensor::from_vector({1, C, H, W}, x);
    const std::vector<float> want = xt.permute_view({0, 2, 3, 1}).contiguous().to_vector();  // [H, W, C]
    std::vector<float> y(size_t(H * W * ldy), -7.0f);
    TransposeArgs a{x.data(), C, H, W, y.data(), ldy};
    nchw_to_nhwc_f32_ref(a);
    for (int64_t p = 0; p < H * W; ++p)
      for (int64_t c = 0; c < C; ++c) REQUIRE(y[size_t(p * ldy + c)] == want[size_t(p * C + c)]);
    impls_vs_ref(
        nchw_to_nhwc_f32_list(), a, size_t(H * W * ldy) * 4,
        [](TransposeArgs& a, void* p) { a.y = static_cast<float*>(p); },
        fmt::format("transpose C={} H={} W={}", C, H, W));
  }
  for (const auto& [rows, C] : std::vector<std::array<int64_t, 2>>{{1, 1}, {7, 24}, {13, 33}, {5, 101}}) {
    const int64_t lda = C + 1, ldb = C + 3, ldy = C + 2;
    const std::vector<float> a = rand_f(size_t(rows * lda), rng, -3.0f, 3.0f),
                             b = rand_f(size_t(rows * ldb), rng, -3.0f, 3.0f);
    std::vector<uint16_t> ah(a.size()), bh(b.size());
    for (size_t i = 0; i < a.size(); ++i) ah[i] = f32_to_f16(a[i]);
    for (size_t i = 0; i < b.size(); ++i) bh[i] = f32_to_f16(b[i]);
    for (DType dt : {DType::f32, DType::f16})
      for (int clamp = 0; clamp < 2; ++clamp) {
        AddArgs ar;
        ar.dt = dt, ar.rows = rows, ar.C = C, ar.lda = lda, ar.ldb = ldb, ar.ldy = ldy;
        ar.a = dt == DType::f32 ? static_cast<const void*>(a.data()) : ah.data();
        ar.b = dt == DType::f32 ? static_cast<const void*>(b.data()) : bh.data();
        if (clamp) ar.lo = 0.0f, ar.hi = 6.0f;
        const size_t eb = dt == DType::f32 ? 4 : 2;
        std::vector<uint8_t> y(size_t(rows * ldy) * eb);
        ar.y = y.data();
        add_clamp_nhwc_ref(ar);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < C; ++c) {
            const float s = dt == DType::f32
                                ? a[size_t(r * lda + c)] + b[size_t(r * ldb + c)]
                                : f16_to_f32(ah[size_t(r * lda + c)]) + f16_to_f32(bh[size_t(r * ldb + c)]);
            const float e = clamp ? std::min(std::max(s, 0.0f), 6.0f) : s;
            float g;
            if (dt == DType::f32)
              std::memcpy(&g, &y[size_t(r * ldy + c) * 4], 4);
            else {
              uint16_t hv;
              std::memcpy(&hv, &y[size_t(r * ldy + c) * 2], 2);
              g = f16_to_f32(hv);
            }
            REQUIRE(g == (dt == DType::f32 ? e : f16_to_f32(f32_to_f16(e))));
          }
        impls_vs_ref(
            add_clamp_nhwc_list(), ar, y.size(), [](AddArgs& a, void* p) { a.y = p; },
            fmt::format("add {} rows={} C={} clamp={}", dtype_name(dt), rows, C, clamp));
      }
  }
}

}  // namespace
