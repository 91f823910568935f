// NHWC kernels (ops/kernels/nhwc.h): the reference twins against independent oracles, and every registered
// implementation (whose ISA this CPU has) against the reference over edge shapes.
//   Independent oracles: ops::conv2d (NCHW, groups = C) for depthwise and im2col, ops::max_pool2d for max
//   pooling, fake_quant_act_value / core f32_to_f16 for the conversions, double sums for average pooling.
//     f32 / f16 depthwise vs conv2d: |got - want| <= (taps + 2) * 2^-23 * (S + |bias|), S = sum |x||w|
//       (conv2d on |x|, |w|): both sides are f32 sums of the same taps in different orders.
//     int8 depthwise: conv2d on the integer values (x - za) and w is EXACT in f32 (|acc| < 2^24), so the
//       reference's f32 output must equal lowp_epilogue_scalar(acc) bit for bit.
//   Implementations vs the reference: BIT-EXACT on every output byte, float paths included (every
//   implementation performs the op sequence documented in kernels/nhwc.h), and bytes outside [0, C) of
//   each output row (channel stride padding) must be left untouched.
#include <doctest/doctest.h>
#include <fmt/format.h>

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
using mpq::testing::to_f16;
using namespace mpq::kernels;

namespace {

// NHWC [H, W, ld] -> NCHW Tensor [1, C, H, W] of f(value).
template <class T, class F>
Tensor nchw_tensor(const T* x, int64_t H, int64_t W, int64_t C, int64_t ld, F f) {
  std::vector<float> v(size_t(C * H * W));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t p = 0; p < H * W; ++p) v[size_t(c * H * W + p)] = f(x[p * ld + c]);
  return Tensor::from_vector({1, C, H, W}, v);
}

ops::Conv2dParams conv_params(const ConvGeom& g, int64_t groups) {
  ops::Conv2dParams p;
  p.stride_h = g.stride_h, p.stride_w = g.stride_w;
  p.pad_top = g.pad_top, p.pad_left = g.pad_left, p.pad_bottom = g.pad_bottom, p.pad_right = g.pad_right;
  p.groups = groups;
  return p;
}

// ------------------------------------------------------------------------------------------ geometry
TEST_CASE("nhwc: conv_geom and TF SAME padding") {
  const ConvGeom s2 = conv_geom_same(112, 112, 32, 0, 3, 3, 2, 2);  // MobileNetV2 stride-2 depthwise
  CHECK(s2.OH == 56);
  CHECK(s2.OW == 56);
  CHECK(s2.pad_top == 0);
  CHECK(s2.pad_bottom == 1);  // the extra pixel goes to the bottom / right
  CHECK(s2.pad_left == 0);
  CHECK(s2.pad_right == 1);
  CHECK(s2.ldx == 32);
  const ConvGeom s1 = conv_geom_same(7, 9, 5, 8, 3, 3, 1, 1);
  CHECK(s1.OH == 7);
  CHECK(s1.OW == 9);
  CHECK(s1.pad_top == 1);
  CHECK(s1.pad_bottom == 1);
  const ConvGeom stem = conv_geom_same(224, 224, 3, 0, 7, 7, 2, 2);  // ResNet50 stem (TF SAME)
  CHECK(stem.OH == 112);
  CHECK(stem.pad_top == 2);
  CHECK(stem.pad_bottom == 3);
  const ConvGeom e = conv_geom(5, 6, 4, 0, 3, 2, 2, 1, 1, 0, 0, 1);
  CHECK(e.OH == 2);
  CHECK(e.OW == 6);
  CHECK_THROWS_AS(conv_geom(2, 2, 1, 0, 5, 5, 1, 1, 0, 0, 0, 0), Error);  // kernel larger than input
  CHECK_THROWS_AS(conv_geom(4, 4, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1), Error);  // ldx < C
  ConvGeom bad = e;
  bad.OH = 3;
  CHECK_THROWS_AS(check_conv_geom(bad, "test"), Error);
}

// ------------------------------------------------------------------------------------------ depthwise
struct DwCase {
  int64_t H, W, C, K, stride, pt, pl, pb, pr;
  std::string str() const {
    return fmt::format("H={} W={} C={} K={} stride={} pads(t{} l{} b{} r{})", H, W, C, K, stride, pt, pl, pb, pr);
  }
};

std::vector<DwCase> dw_cases() {
  std::vector<DwCase> cs;
  const int64_t Cs[] = {1, 3, 16, 17, 33, 101};
  int i = 0;
  for (int64_t C : Cs)
    for (int64_t stride : {1, 2})
      for (int64_t K : {3, 1, 5}) {
        ++i;
        const int64_t H = 1 + (i * 5) % 11, W = 2 + (i * 7) % 13;  // 1..11 x 2..14, incl. images smaller than K
        const int64_t p = K / 2;
        // SAME-like, asymmetric (extra pixel bottom / right), and no padding
        const DwCase same{H, W, C, K, stride, p, p, p, p};
        const DwCase asym{H, W, C, K, stride, std::max<int64_t>(p - 1, 0), p, p + (K > 1), std::max<int64_t>(p - 1, 0)};
        const DwCase none{H + K, W + K, C, K, stride, 0, 0, 0, 0};
        for (const DwCase& c : {same, asym, none})
          if (c.H + c.pt + c.pb >= c.K && c.W + c.pl + c.pr >= c.K) cs.push_back(c);
      }
  cs.push_back({1, 1, 7, 3, 1, 1, 1, 1, 1});        // single pixel: every window mostly padding
  cs.push_back({4, 4, 40, 3, 2, 0, 0, 1, 1});       // TF SAME stride 2 on an even image
  cs.push_back({9, 20, 96 + 5, 3, 1, 1, 1, 1, 1});  // wide row: interior + border columns
  cs.push_back({7, 7, 64, 7, 1, 3, 3, 3, 3});       // large kernel
  cs.push_back({48, 40, 72, 3, 1, 1, 1, 1, 1});     // above the threading threshold: 2 threads split the rows
  cs.push_back({47, 41, 40, 3, 2, 0, 0, 1, 1});     // same, stride 2, odd sizes
  return cs;
}

// One epilogue configuration: 0 f32 bias, 1 f32 bias relu6, 2 f16 bias relu, 3 u8 bias relu6,
// 4 f32 f32-residual clamp, 5 u8 u8-residual, 6 f16 no bias.
constexpr int kNumDwEpi = 7;
struct DwEpiData {
  std::vector<float> bias, res_f32;
  std::vector<uint8_t> res_u8;
};
LowpEpilogue dw_epi(int id, int64_t M, int64_t C, int64_t ld_res, DwEpiData& d, std::mt19937& rng) {
  d.bias = rand_f(size_t(C), rng, -1.0f, 1.0f);
  d.res_f32 = rand_f(size_t(M * ld_res), rng, -2.0f, 2.0f);
  d.res_u8 = rand_u8(size_t(M * ld_res), rng);
  LowpEpilogue ep;
  if (id != 6) ep.bias = d.bias.data();
  if (id == 1 || id == 3) ep.clamp_lo = 0.0f, ep.clamp_hi = 6.0f;
  if (id == 2) ep.clamp_lo = 0.0f;
  if (id == 2 || id == 6) ep.out = DType::f16;
  if (id == 3 || id == 5) ep.out = DType::u8, ep.out_scale = 0.03f, ep.out_zp = id == 3 ? 0 : 117;
  if (id == 4) ep.residual = d.res_f32.data(), ep.ld_res = ld_res, ep.clamp_lo = -1.0f, ep.clamp_hi = 1.5f;
  if (id == 5)
    ep.residual = d.res_u8.data(), ep.residual_u8 = true, ep.ld_res = ld_res, ep.res_scale = 0.02f, ep.res_zp = 131;
  return ep;
}
size_t out_bytes(DType o) { return o == DType::f32 ? 4 : o == DType::f16 ? 2 : 1; }

// Runs every fast implementation of `list` on `a` and compares all output bytes with the reference's.
template <class List, class Args>
void dw_impls_vs_ref(const List& list, Args a, size_t ybytes, const std::string& what) {
  std::vector<uint8_t> ref(ybytes, 0xAB);  // [OH*OW, ldy] output bytes, padding channels stay 0xAB
  a.y = ref.data();
  list.impls().back().fn(a);
  for_each_fast_impl(list, [&](const auto& impl) {
    std::vector<uint8_t> got(ybytes, 0xAB);
    a.y = got.data();
    impl.fn(a);
    size_t i = 0;
    while (i < ybytes && got[i] == ref[i]) ++i;
    CHECK_MESSAGE(i == ybytes, fmt::format("{} {}: first differing output byte {} of {}", impl.name, what, i, ybytes));
  });
}

TEST_CASE("nhwc: depthwise f32 / f16 reference vs conv2d, implementations bit-exact vs reference") {
  std::mt19937 rng(11);
  int n = 0;
  for (const DwCase& c : dw_cases()) {
    const ConvGeom g = conv_geom(c.H, c.W, c.C, c.C + (c.C % 3), c.K, c.K, c.stride, c.stride, c.pt, c.pl, c.pb, c.pr);
    const int64_t M = g.OH * g.OW, ldy = c.C + 2 * (c.C % 2), taps = c.K * c.K;
    const std::vector<float> x = rand_f(size_t(c.H * c.W * g.ldx), rng, -2.0f, 2.0f);  // [H, W, ldx]
    const std::vector<float> wt = rand_f(size_t(c.C * taps), rng, -1.0f, 1.0f);        // [C, 1, K, K]
    const std::vector<uint16_t> xh = to_f16(x), wh = to_f16(wt);
    const PackedDwF32 p32 = pack_dw_f32(wt.data(), c.C, c.K, c.K);
    const PackedDwF16 p16 = pack_dw_f16(wt.data(), c.C, c.K, c.K);
    for (int ei = 0; ei < kNumDwEpi; ++ei, ++n) {
      DwEpiData d;
      const LowpEpilogue ep = dw_epi(ei, M, c.C, c.C + 1, d, rng);
      const std::string what = fmt::format("{} epilogue {}", c.str(), ei);
      const size_t yb = size_t(M * ldy) * out_bytes(ep.out);
      DwF32Args a32;
      a32.g = g, a32.x = x.data(), a32.w = &p32, a32.ldy = ldy, a32.ep = ep;
      DwF16Args a16;
      a16.g = g, a16.x = xh.data(), a16.w = &p16, a16.ldy = ldy, a16.ep = ep;
      if (ei == 0) {  // the references against conv2d (f32 output, bias)
        for (int f16 = 0; f16 < 2; ++f16) {
          auto val = [&](auto v) { return f16 ? f16_to_f32(uint16_t(v)) : float(v); };
          Tensor xt = f16 ? nchw_tensor(xh.data(), c.H, c.W, c.C, g.ldx, [](uint16_t v) { return f16_to_f32(v); })
                          : nchw_tensor(x.data(), c.H, c.W, c.C, g.ldx, [](float v) { return v; });
          Tensor xa =
              f16 ? nchw_tensor(xh.data(), c.H, c.W, c.C, g.ldx, [](uint16_t v) { return std::fabs(f16_to_f32(v)); })
                  : nchw_tensor(x.data(), c.H, c.W, c.C, g.ldx, [](float v) { return std::fabs(v); });
          std::vector<float> wv(wt.size()), wa(wt.size());
          for (size_t i = 0; i < wt.size(); ++i) wv[i] = f16 ? val(wh[i]) : wt[i], wa[i] = std::fabs(wv[i]);
          const Tensor wT = Tensor::from_vector({c.C, 1, c.K, c.K}, wv),
                       waT = Tensor::from_vector({c.C, 1, c.K, c.K}, wa);
          const Tensor bT = Tensor::from_vector({c.C}, d.bias), zT = Tensor::zeros({c.C});
          const std::vector<float> want = ops::conv2d(xt, wT, bT, conv_params(g, c.C)).contiguous().to_vector();
          const std::vector<float> S = ops::conv2d(xa, waT, zT, conv_params(g, c.C)).contiguous().to_vector();
          std::vector<float> got(size_t(M * ldy));  // [OH*OW, ldy] f32
          if (f16) {
            a16.y = got.data();
            dwconv_f16_ref(a16);
          } else {
            a32.y = got.data();
            dwconv_f32_ref(a32);
          }
          for (int64_t ch = 0; ch < c.C; ++ch)
            for (int64_t m = 0; m < M; ++m) {
              const double w = want[size_t(ch * M + m)], gv = got[size_t(m * ldy + ch)];
              const double tol = double(taps + 2) * 0x1p-23 * (S[size_t(ch * M + m)] + std::fabs(d.bias[size_t(ch)]));
              if (!(std::fabs(gv - w) <= tol)) {
                FAIL(fmt::format("{} f16={} at pixel {} channel {}: got {} want {} tol {:.3g}", what, f16, m, ch, gv, w,
                                 tol));
              }
            }
        }
      }
      dw_impls_vs_ref(dwconv_f32_list(), a32, yb, "f32 " + what);
      dw_impls_vs_ref(dwconv_f16_list(), a16, yb, "f16 " + what);
    }
  }
  MESSAGE(fmt::format("{} depthwise f32/f16 configurations", n));
}

TEST_CASE("nhwc: depthwise int8 reference exact vs conv2d accumulators, implementations bit-exact") {
  std::mt19937 rng(12);
  int n = 0;
  for (const DwCase& c : dw_cases()) {
    const ConvGeom g =
        conv_geom(c.H, c.W, c.C, c.C + 4 * (c.C % 2), c.K, c.K, c.stride, c.stride, c.pt, c.pl, c.pb, c.pr);
    const int64_t M = g.OH * g.OW, ldy = c.C + 3, taps = c.K * c.K;
    const std::vector<uint8_t> x = rand_u8(size_t(c.H * c.W * g.ldx), rng);  // [H, W, ldx]
    std::vector<int8_t> wq(size_t(c.C * taps));                              // [C, 1, K, K]
    for (auto& v : wq) v = int8_t(int(rand_u8(1, rng, 0, 254)[0]) - 127);
    if (c.C > 2) wq[0] = -128, wq[1] = 127;  // extremes (pack must not saturate)
    const std::vector<float> ws = rand_f(size_t(c.C), rng, 0.001f, 0.02f);
    const PackedDwQ8 pq = pack_dw_q8(wq.data(), ws.data(), c.C, c.K, c.K);
    const int32_t za = int32_t(rand_u8(1, rng)[0]);
    for (int ei = 0; ei < kNumDwEpi; ++ei, ++n) {
      DwEpiData d;
      const LowpEpilogue ep = dw_epi(ei, M, c.C, c.C + 2, d, rng);
      const std::string what = fmt::format("int8 {} za={} epilogue {}", c.str(), za, ei);
      DwQ8Args a;
      a.g = g, a.x = x.data(), a.w = &pq, a.ldy = ldy, a.sa = 0.05f, a.za = za, a.ep = ep;
      if (ei == 0) {
        const Tensor xt = nchw_tensor(x.data(), c.H, c.W, c.C, g.ldx, [&](uint8_t v) { return float(int(v) - za); });
        std::vector<float> wv(wq.begin(), wq.end());
        const std::vector<float> acc =
            ops::conv2d(xt, Tensor::from_vector({c.C, 1, c.K, c.K}, wv), Tensor::zeros({c.C}), conv_params(g, c.C))
                .contiguous()
                .to_vector();
        std::vector<float> got(size_t(M * ldy)), want(size_t(M * ldy));  // [OH*OW, ldy] f32
        a.y = got.data();
        dwconv_qu8_qc8w_ref(a);
        for (int64_t ch = 0; ch < c.C; ++ch)
          for (int64_t m = 0; m < M; ++m)
            lowp_epilogue_scalar(ep, a.sa * ws[size_t(ch)], acc[size_t(ch * M + m)], m, ch, want.data(), ldy);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t ch = 0; ch < c.C; ++ch)
            if (f32_bits(got[size_t(m * ldy + ch)]) != f32_bits(want[size_t(m * ldy + ch)]))
              FAIL(fmt::format("{} pixel {} channel {}: got {} want {}", what, m, ch, got[size_t(m * ldy + ch)],
                               want[size_t(m * ldy + ch)]));
      }
      dw_impls_vs_ref(dwconv_qu8_qc8w_list(), a, size_t(M * ldy) * out_bytes(ep.out), what);
    }
  }
  MESSAGE(fmt::format("{} depthwise int8 configurations", n));
}

TEST_CASE("nhwc: depthwise argument checks name the problem") {
  const std::vector<float> wt(3 * 9, 0.5f);
  const PackedDwF32 p = pack_dw_f32(wt.data(), 3, 3, 3);
  std::vector<float> x(5 * 5 * 3), y(5 * 5 * 3);
  DwF32Args a;
  a.g = conv_geom(5, 5, 3, 0, 3, 3, 1, 1, 1, 1, 1, 1), a.x = x.data(), a.w = &p, a.y = y.data(), a.ldy = 3;
  CHECK_NOTHROW(dwconv_f32(a));
  a.ldy = 2;
  CHECK_THROWS_WITH_AS(dwconv_f32(a), doctest::Contains("ldy=2"), Error);
  a.ldy = 3;
  a.g = conv_geom(5, 5, 4, 0, 3, 3, 1, 1, 1, 1, 1, 1);
  CHECK_THROWS_WITH_AS(dwconv_f32(a), doctest::Contains("packed weights C=3"), Error);
  const std::vector<int8_t> wq(9, 1);
  const float s = 0.1f;
  const PackedDwQ8 pq = pack_dw_q8(wq.data(), &s, 1, 3, 3);
  DwQ8Args q;
  std::vector<uint8_t> xq(25), yq(25);
  q.g = conv_geom(5, 5, 1, 0, 3, 3, 1, 1, 1, 1, 1, 1), q.x = xq.data(), q.w = &pq, q.y = yq.data(), q.ldy = 1;
  q.za = 300;
  CHECK_THROWS_WITH_AS(dwconv_qu8_qc8w(q), doctest::Contains("zero point 300"), Error);
  CHECK_THROWS_AS(pack_dw_f32(wt.data(), 0, 3, 3), Error);
}

}  // namespace

// ------------------------------------------------------------------------------- W4A8 implicit-GEMM conv
namespace {

// Independent oracle of conv_qu8_qc4w for per-channel weights: a direct loop over the taps inside the image,
// acc = sum (x - za) * w (a padded tap reads za, i.e. adds 0), which equals the GEMM's acc - za * colsum;
// then the documented epilogue with f = float(acc), scale = sa * s[n].
std::vector<uint8_t> q4_conv_direct(const Q4ConvArgs& a, size_t ybytes) {
  const ConvGeom& g = a.g;
  std::vector<uint8_t> y(ybytes, 0xAB);
  for (int64_t oh = 0; oh < g.OH; ++oh)
    for (int64_t ow = 0; ow < g.OW; ++ow)
      for (int64_t n = 0; n < a.w->N; ++n) {
        int32_t acc = 0;
        for (int64_t kh = 0; kh < g.KH; ++kh)
          for (int64_t kw = 0; kw < g.KW; ++kw) {
            const int64_t ih = oh * g.stride_h - g.pad_top + kh, iw = ow * g.stride_w - g.pad_left + kw;
            if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
            for (int64_t c = 0; c < g.C; ++c)
              acc += (int32_t(a.x[(ih * g.W + iw) * g.ldx + c]) - a.za) * a.w->at(n, (kh * g.KW + kw) * g.C + c);
          }
        lowp_epilogue_scalar(a.ep, a.sa * a.w->scale[size_t(n)], float(acc), oh * g.OW + ow, n, y.data(), a.ldc);
      }
  return y;
}

struct Q4ConvCase {
  int64_t H, W, C, ldx, k, stride, N, group;
  bool same;  // TF SAME padding (extra pixel bottom / right), else symmetric k / 2
};

}  // namespace

TEST_CASE("nhwc: W4A8 implicit-GEMM conv, reference vs direct loop, implementations bit-exact") {
  std::mt19937 rng(31);
  const Q4ConvCase cases[] = {
      {33, 31, 3, 3, 7, 2, 64, 0, false},    // ResNet50 stem shape class: C = 3, 7x7 / 2, K = 147 (K % 4 = 3)
      {29, 30, 3, 4, 3, 2, 32, 0, true},     // MobileNetV2 stem class, TF SAME, ldx > C, K = 27
      {13, 11, 64, 64, 3, 1, 40, 0, false},  // 3x3, K = 576, N tail
      {12, 12, 72, 80, 3, 2, 33, 0, true},   // strided 3x3, ldx > C, copies of more than 64 bytes
      {9, 10, 40, 40, 1, 2, 70, 0, false},   // strided 1x1 (projection shortcut)
      {10, 9, 32, 32, 3, 1, 20, 32, false},  // grouped weights (group 32 over K = 288)
      {8, 8, 16, 16, 3, 1, 17, 0, false},    // M = 64: few tiles
      {40, 40, 8, 8, 3, 1, 96, 0, false},    // 1600 rows: several A chunks, 2 threads
  };
  for (const Q4ConvCase& c : cases)
    for (int epi = 0; epi < 3; ++epi) {
      const ConvGeom g =
          c.same ? conv_geom_same(c.H, c.W, c.C, c.ldx, c.k, c.k, c.stride, c.stride)
                 : conv_geom(c.H, c.W, c.C, c.ldx, c.k, c.k, c.stride, c.stride, c.k / 2, c.k / 2, c.k / 2, c.k / 2);
      const int64_t K = c.k * c.k * c.C, M = g.OH * g.OW, ng = c.group ? K / c.group : 1;
      const auto x = rand_u8(size_t(c.H * c.W * c.ldx), rng);                // [H, W, ldx] u8
      const auto wq = rand_u8(size_t(c.N * ((K + 1) / 2)), rng);             // q4 [N, ceil(K/2)]
      const auto sw = rand_f(size_t(c.N * ng), rng, 0.01f, 0.2f);            // [N][ng]
      const auto bias = rand_f(size_t(c.N), rng, -2.0f, 2.0f);               // [N]
      const auto res = rand_u8(size_t(M * (c.N + 2)), rng);                  // [M, N + 2] u8 residual
      const PackedQ4W pw = pack_q4w(wq.data(), c.N, K, c.group, sw.data());  // weights in (kh, kw, c) order
      Q4ConvArgs a;
      a.g = g, a.x = x.data(), a.sa = 0.02f, a.za = int32_t(rng() % 256), a.w = &pw, a.ldc = c.N + 3;
      a.ep.bias = bias.data();
      if (epi == 1) a.ep.clamp_lo = 0.0f, a.ep.out = DType::u8, a.ep.out_scale = 0.05f, a.ep.out_zp = 9;
      if (epi == 2) {
        a.ep.out = DType::u8, a.ep.out_scale = 0.08f, a.ep.out_zp = 128;
        a.ep.residual = res.data(), a.ep.residual_u8 = true, a.ep.ld_res = c.N + 2, a.ep.res_scale = 0.03f;
        a.ep.res_zp = 100;
      }
      const size_t ob = a.ep.out == DType::f32 ? 4 : 1, ybytes = size_t(M * a.ldc) * ob;
      const std::string what = fmt::format("conv {}x{}x{} ldx={} k={} s={} N={} group={} same={} epi={} za={}", c.H,
                                           c.W, c.C, c.ldx, c.k, c.stride, c.N, c.group, c.same, epi, a.za);
      std::vector<uint8_t> ref(ybytes, 0xAB);
      a.C = ref.data();
      conv_qu8_qc4w_ref(a);
      if (c.group == 0) {
        const std::vector<uint8_t> direct = q4_conv_direct(a, ybytes);
        CHECK_MESSAGE(direct == ref, "reference vs direct loop: ", what);
      }
      for_each_fast_impl(conv_qu8_qc4w_list(), [&](const auto& impl) {
        std::vector<uint8_t> got(ybytes, 0xAB);
        a.C = got.data();
        impl.fn(a);
        size_t i = 0;
        while (i < ybytes && got[i] == ref[i]) ++i;
        CHECK_MESSAGE(i == ybytes,
                      fmt::format("{} {}: first differing output byte {} of {}", impl.name, what, i, ybytes));
      });
    }
  // Bad input names the mismatch.
  const std::vector<uint8_t> wq(8 * 14, 0x11);
  const std::vector<float> sw(8, 0.1f);
  const PackedQ4W pw = pack_q4w(wq.data(), 8, 27, 0, sw.data());
  std::vector<uint8_t> x(10 * 10 * 4), y(64 * 8);
  Q4ConvArgs a;
  a.g = conv_geom(10, 10, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1), a.x = x.data(), a.w = &pw, a.C = y.data(), a.ldc = 8;
  CHECK_THROWS_WITH_AS(conv_qu8_qc4w(a), doctest::Contains("!= packed K = 27"), mpq::Error);
}
