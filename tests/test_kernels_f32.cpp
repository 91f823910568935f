// fp32 GEMM and conv2d kernels: every registered implementation (whose ISA this CPU has) against the
// reference oracles, plus the MPQ_ISA cap, the oneDNN primitive cache and argument checks.
// Tolerances are the rigorous float summation bound: |got - ref| <= 1.2e-7 * (K + 2) * sum|a||b|
// (sum|a||b| computed by running the reference on |inputs|).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "ops/kernels/f32_impls.h"
#include "ops/kernels/onednn/onednn_context.h"
#include "ops/kernels/registry.h"

using namespace mpq;
using namespace mpq::kernels;

namespace {

std::vector<float> rand_vec(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}
std::vector<float> abs_vec(std::vector<float> v) {
  for (float& x : v) x = std::fabs(x);
  return v;
}

// Worst violation of |got - ref| <= eps * bound (+ tiny absolute slack); returns "" if all pass.
std::string compare(const std::vector<float>& got, const std::vector<float>& ref, const std::vector<float>& bound,
                    double eps) {
  for (size_t i = 0; i < ref.size(); ++i) {
    const double tol = eps * double(bound[i]) + 1e-30;
    if (!(std::fabs(double(got[i]) - double(ref[i])) <= tol))
      return fmt::format("first mismatch at flat index {}: got {} ref {} (tol {:.3g})", i, got[i], ref[i], tol);
  }
  return "";
}

// ------------------------------------------------------------------------------------------ GEMM
struct GemmCase {
  int64_t M, N, K;
  bool ta, tb;
  int64_t pad;  // extra elements on every leading dimension
  float beta;
  std::string str() const {
    return fmt::format("M={} N={} K={} trans_a={} trans_b={} ld_pad={} beta={}", M, N, K, ta, tb, pad, beta);
  }
};

struct GemmBuffers {
  GemmCase c;
  int64_t lda, ldb, ldc;
  std::vector<float> a, b, c0, aa, ab;  // A [(ta?K:M), lda], B [(tb?N:K), ldb], C [M, ldc]; aa/ab = |A|,|B|
  explicit GemmBuffers(const GemmCase& gc, unsigned seed) : c(gc) {
    lda = (gc.ta ? gc.M : gc.K) + gc.pad;
    ldb = (gc.tb ? gc.K : gc.N) + gc.pad;
    ldc = gc.N + gc.pad;
    a = rand_vec(size_t((gc.ta ? gc.K : gc.M) * lda), seed);
    b = rand_vec(size_t((gc.tb ? gc.N : gc.K) * ldb), seed + 1);
    c0 = rand_vec(size_t(gc.M * ldc), seed + 2);
    aa = abs_vec(a);
    ab = abs_vec(b);
  }
  GemmArgs args(const float* A, const float* B, float* C) const {
    return {c.M, c.N, c.K, A, lda, c.ta, B, ldb, c.tb, C, ldc, c.beta};
  }
};

// Runs `fn` and the reference on the same case; checks the valid region and that padding is untouched.
void check_gemm(const GemmCase& gc, GemmFn fn, const char* name, unsigned seed) {
  GemmBuffers buf(gc, seed);
  std::vector<float> ref = buf.c0, got = buf.c0, bound = abs_vec(buf.c0);
  gemm_f32_ref(buf.args(buf.a.data(), buf.b.data(), ref.data()));
  gemm_f32_ref(buf.args(buf.aa.data(), buf.ab.data(), bound.data()));
  fn(buf.args(buf.a.data(), buf.b.data(), got.data()));
  std::string err;
  for (int64_t i = 0; i < gc.M && err.empty(); ++i)
    for (int64_t j = gc.N; j < buf.ldc && err.empty(); ++j)
      if (got[size_t(i * buf.ldc + j)] != buf.c0[size_t(i * buf.ldc + j)])
        err = fmt::format("wrote into ldc padding at row {} col {}", i, j);
  if (err.empty()) err = compare(got, ref, bound, 1.2e-7 * double(gc.K + 2));
  INFO(fmt::format("impl={} {}", name, gc.str()));
  CHECK_MESSAGE(err.empty(), err);
}

std::vector<GemmCase> gemm_cases() {
  const int64_t odd[] = {1, 3, 7, 13, 17, 31, 33, 65, 127};
  std::vector<GemmCase> cases;
  for (int t = 0; t < 4; ++t) {
    const bool ta = t & 1, tb = t & 2;
    cases.push_back({1, 1, 1, ta, tb, 0, 0.0f});
    cases.push_back({1, 1, 1, ta, tb, 3, 1.0f});
    for (int64_t v : odd) {
      cases.push_back({v, 33, 17, ta, tb, t, float(v & 1)});  // M sweep (tile-height tails)
      cases.push_back({13, v, 31, ta, tb, 1, float(t & 1)});  // N sweep (column tails)
      cases.push_back({17, 65, v, ta, tb, 0, 1.0f});          // K sweep
    }
    cases.push_back({127, 127, 65, ta, tb, 5, 0.0f});
    cases.push_back({30, 50, 600, ta, tb, 2, 1.0f});    // K > KC: several K blocks, accumulate across them
    cases.push_back({150, 1570, 70, ta, tb, 1, 0.0f});  // N > NC, multi-threaded split over N
    cases.push_back({301, 20, 260, ta, tb, 0, 1.0f});   // few columns: threaded split over M
    cases.push_back({5, 3, 0, ta, tb, 0, 0.0f});        // K = 0: C = beta * C
    cases.push_back({5, 3, 0, ta, tb, 1, 1.0f});
  }
  return cases;
}

}  // namespace

TEST_CASE("gemm_f32: every registered implementation matches the reference") {
  const auto cases = gemm_cases();
  for (const auto& impl : gemm_f32_list().impls()) {
    if (!isa_detected(impl.isa) || impl.isa == Isa::ref) continue;
    unsigned seed = 1;
    // supports() is only a speed preference for GEMM: every entry must be right on every shape.
    for (const GemmCase& gc : cases) check_gemm(gc, impl.fn, impl.name, seed++);
  }
}

TEST_CASE("gemm_f32: dispatcher under each MPQ_ISA cap") {
  const Isa caps[] = {Isa::ref, Isa::avx2, Isa::avx512};
  for (Isa cap : caps) {
    ScopedIsaCap scoped(cap);
    const GemmCase gc{64, 97, 45, false, false, 2, 1.0f};  // small: the packed GEMM is preferred
    GemmBuffers buf(gc, 7);
    const GemmArgs g = buf.args(buf.a.data(), buf.b.data(), nullptr);
    const std::string name = gemm_f32_impl_name(g);
    INFO(fmt::format("cap={} selected={}", isa_name(cap), name));
    if (cap == Isa::ref) CHECK(name == "gemm_f32_ref");
    if (cap == Isa::avx2 && isa_detected(Isa::avx2)) CHECK(name == "gemm_f32_6x16__avx2");
    if (cap == Isa::avx512 && isa_detected(Isa::avx512)) CHECK(name == "gemm_f32_14x32__avx512");
    check_gemm(gc, &gemm_f32, name.c_str(), 11);
  }
}

namespace {
// A list of four entries for KernelList::candidates: a preference predicate on the first, the reference last.
struct ToyArgs {
  int n;
};
using ToyFn = int (*)();
int toy_a() { return 1; }
int toy_b() { return 2; }
int toy_c() { return 3; }
int toy_ref() { return 4; }
bool toy_large(const ToyArgs& a) { return a.n >= 100; }
constexpr KernelImpl<ToyArgs, ToyFn> kToyImpls[] = {{"toy_large__avx512", Isa::avx512, toy_large, toy_a},
                                                    {"toy__avx512", Isa::avx512, nullptr, toy_b},
                                                    {"toy__avx2", Isa::avx2, nullptr, toy_c},
                                                    {"toy_ref", Isa::ref, nullptr, toy_ref}};
constexpr KernelList<ToyArgs, ToyFn> kToyList("toy", kToyImpls);
std::vector<std::string> names(const std::vector<const KernelImpl<ToyArgs, ToyFn>*>& v) {
  std::vector<std::string> out;
  for (const auto* i : v) out.emplace_back(i->name);
  return out;
}
}  // namespace

TEST_CASE("KernelList::candidates: the dispatcher's choice first, then every other enabled non-reference entry") {
  using V = std::vector<std::string>;
  ScopedIsaCap cap(Isa::avx512);
  if (isa_detected(Isa::avx512)) {
    CHECK(names(kToyList.candidates({10}, false)) == V{"toy__avx512"});
    CHECK(names(kToyList.candidates({10}, true)) == V{"toy__avx512", "toy_large__avx512", "toy__avx2"});
    CHECK(names(kToyList.candidates({500}, true)) == V{"toy_large__avx512", "toy__avx512", "toy__avx2"});
    CHECK(names(kToyList.candidates({10}, true, &kToyImpls[2])) == V{"toy__avx2", "toy_large__avx512", "toy__avx512"});
  }
  {
    ScopedIsaCap avx2(Isa::avx2);
    if (isa_detected(Isa::avx2)) CHECK(names(kToyList.candidates({500}, true)) == V{"toy__avx2"});
  }
  ScopedIsaCap ref(Isa::ref);  // only the reference is enabled: it is the one candidate
  CHECK(names(kToyList.candidates({500}, true)) == V{"toy_ref"});
  CHECK(names(kToyList.candidates({500}, false)) == V{"toy_ref"});
}

TEST_CASE("gemm_f32: argument checks") {
  float x = 0.0f;
  CHECK_THROWS_AS(gemm_f32({-1, 1, 1, &x, 1, false, &x, 1, false, &x, 1, 0.0f}), mpq::Error);
  CHECK_THROWS_AS(gemm_f32({1, 1, 1, nullptr, 1, false, &x, 1, false, &x, 1, 0.0f}), mpq::Error);
  CHECK_THROWS_AS(gemm_f32({2, 4, 3, &x, 2, false, &x, 4, false, &x, 4, 0.0f}), mpq::Error);  // lda < K
  CHECK_THROWS_AS(gemm_f32({1, 1, 1, &x, 1, false, &x, 1, false, &x, 1, 0.5f}), mpq::Error);  // beta
  CHECK_NOTHROW(gemm_f32({0, 0, 0, nullptr, 0, false, nullptr, 0, false, nullptr, 0, 0.0f}));
}

TEST_CASE("cpu_features: parse and cap") {
  CHECK(parse_isa("ref") == Isa::ref);
  CHECK(parse_isa("avx512") == Isa::avx512);
  CHECK_THROWS_AS(parse_isa("sse2"), mpq::Error);
  ScopedIsaCap cap(Isa::ref);
  CHECK(isa_enabled(Isa::ref));
  CHECK_FALSE(isa_enabled(Isa::avx2));
}

// ------------------------------------------------------------------------------------------ conv
namespace {

Conv2dShape conv(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t sh, int64_t sw,
                 int64_t pt, int64_t pl, int64_t pb, int64_t pr, int64_t dh, int64_t dw, int64_t g) {
  return {N, C, H, W, O, KH, KW, sh, sw, pt, pl, pb, pr, dh, dw, g};
}
std::string conv_str(const Conv2dShape& s, bool bias) {
  return fmt::format(
      "N={} C={} H={} W={} O={} K={}x{} stride={},{} pad(t,l,b,r)={},{},{},{} dil={},{} groups={} bias={} -> {}x{}",
      s.N, s.C, s.H, s.W, s.O, s.KH, s.KW, s.stride_h, s.stride_w, s.pad_top, s.pad_left, s.pad_bottom, s.pad_right,
      s.dil_h, s.dil_w, s.groups, bias, s.OH(), s.OW());
}

std::vector<Conv2dShape> conv_cases() {
  return {
      conv(1, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),       // plain 3x3 same, odd H/W
      conv(3, 4, 11, 13, 6, 3, 3, 2, 2, 1, 0, 2, 1, 1, 1, 1),     // stride 2, asymmetric padding, batch 3
      conv(1, 6, 9, 8, 4, 3, 3, 1, 2, 2, 1, 0, 1, 2, 2, 2),       // dilation 2, groups 2
      conv(3, 8, 7, 7, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8),       // depthwise
      conv(1, 4, 9, 7, 8, 3, 3, 2, 2, 1, 1, 0, 1, 1, 1, 4),       // depthwise x2 multiplier, stride 2
      conv(1, 5, 5, 7, 7, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1),       // 1x1
      conv(3, 16, 9, 9, 32, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1),     // 1x1 stride 2 (projection shortcut)
      conv(1, 3, 15, 13, 4, 7, 7, 2, 2, 3, 3, 2, 3, 1, 1, 1),     // 7x7 stride 2 stem-like, asymmetric
      conv(3, 6, 9, 11, 6, 3, 3, 2, 1, 0, 1, 1, 0, 2, 1, 3),      // groups 3, mixed stride/dilation
      conv(1, 32, 13, 13, 48, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),   // blocked-layout sized channels
      conv(1, 32, 11, 11, 32, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 32),  // depthwise dilated, 16-multiple channels
  };
}

template <class List, class Body>
void for_each_impl(const List& list, Body&& body) {
  for (const auto& impl : list.impls())
    if (impl.isa != Isa::ref && isa_detected(impl.isa)) body(impl);
}

}  // namespace

TEST_CASE("conv2d_f32: fwd / bwd_data / bwd_weight of every implementation match the reference") {
  unsigned seed = 100;
  int variant = 0;
  for (const Conv2dShape& s : conv_cases()) {
    for (int bias_on = 0; bias_on < 2; ++bias_on, ++variant) {
      const bool has_bias = bias_on != 0;
      const int64_t Cg = s.C / s.groups;
      const size_t nx = size_t(s.N * s.C * s.H * s.W), nw = size_t(s.O * Cg * s.KH * s.KW);
      const size_t ny = size_t(s.N * s.O * s.OH() * s.OW());
      auto x = rand_vec(nx, seed++), w = rand_vec(nw, seed++),
           b = rand_vec(size_t(s.O), seed++);  // [N,C,H,W] [O,C/g,KH,KW] [O]
      auto gy = rand_vec(ny, seed++);          // [N,O,OH,OW]
      const auto ax = abs_vec(x), aw = abs_vec(w), ab = abs_vec(b), agy = abs_vec(gy);
      const double eps_fwd = 1.2e-7 * double(Cg * s.KH * s.KW + 2);
      const double eps_bwd_w = 1.2e-7 * double(s.N * s.OH() * s.OW() + 2);
      const double eps_bwd_d = 1.2e-7 * double(s.O / s.groups * s.KH * s.KW + 2);
      const std::string what = conv_str(s, has_bias);

      std::vector<float> y_ref(ny), y_bound(ny);  // [N, O, OH, OW]
      conv2d_fwd_f32_ref(s, x.data(), w.data(), has_bias ? b.data() : nullptr, y_ref.data());
      conv2d_fwd_f32_ref(s, ax.data(), aw.data(), has_bias ? ab.data() : nullptr, y_bound.data());
      std::vector<float> gx_ref(nx), gx_bound(nx);  // [N, C, H, W]
      conv2d_bwd_data_f32_ref(s, gy.data(), w.data(), gx_ref.data());
      conv2d_bwd_data_f32_ref(s, agy.data(), aw.data(), gx_bound.data());
      std::vector<float> gw_ref(nw), gw_bound(nw), gb_ref(size_t(s.O)), gb_bound(size_t(s.O));  // [O,C/g,KH,KW], [O]
      conv2d_bwd_weight_f32_ref(s, x.data(), gy.data(), gw_ref.data(), gb_ref.data());
      conv2d_bwd_weight_f32_ref(s, ax.data(), agy.data(), gw_bound.data(), gb_bound.data());

      for_each_impl(conv2d_fwd_f32_list(), [&](const auto& impl) {
        std::vector<float> y(ny, 123.0f);
        impl.fn(s, x.data(), w.data(), has_bias ? b.data() : nullptr, y.data());
        const std::string err = compare(y, y_ref, y_bound, eps_fwd);
        INFO(fmt::format("impl={} {}", impl.name, what));
        CHECK_MESSAGE(err.empty(), err);
      });
      for_each_impl(conv2d_bwd_data_f32_list(), [&](const auto& impl) {
        std::vector<float> gx(nx, 123.0f);
        impl.fn(s, gy.data(), w.data(), gx.data());
        const std::string err = compare(gx, gx_ref, gx_bound, eps_bwd_d);
        INFO(fmt::format("impl={} {}", impl.name, what));
        CHECK_MESSAGE(err.empty(), err);
      });
      for_each_impl(conv2d_bwd_weight_f32_list(), [&](const auto& impl) {
        std::vector<float> gw(nw, 123.0f), gb(size_t(s.O), 123.0f);
        impl.fn(s, x.data(), gy.data(), gw.data(), has_bias ? gb.data() : nullptr);
        std::string err = compare(gw, gw_ref, gw_bound, eps_bwd_w);
        if (err.empty() && has_bias) err = "bias grad: " + compare(gb, gb_ref, gb_bound, eps_bwd_w);
        if (err == "bias grad: ") err.clear();
        INFO(fmt::format("impl={} {}", impl.name, what));
        CHECK_MESSAGE(err.empty(), err);
      });
    }
  }
}

TEST_CASE("conv2d_f32: oneDNN primitive cache reuses primitives and dispatch honours MPQ_ISA") {
  const Conv2dShape s = conv(1, 4, 6, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1);
  auto x = rand_vec(size_t(4 * 6 * 5), 1), w = rand_vec(size_t(3 * 4 * 9), 2);  // [1,4,6,5], [3,4,3,3]
  std::vector<float> y1(size_t(3 * 6 * 5)), y2(y1.size()), y3(y1.size());       // [1,3,6,5]
  conv2d_fwd_f32(s, x.data(), w.data(), nullptr, y1.data());
  const size_t hits = onednn::primitive_cache().hits();
  conv2d_fwd_f32(s, x.data(), w.data(), nullptr, y2.data());
  if (isa_enabled(Isa::avx2)) CHECK(onednn::primitive_cache().hits() > hits);
  CHECK(y1 == y2);
  ScopedIsaCap cap(Isa::ref);
  CHECK(std::string(conv2d_fwd_f32_list().select(s).name) == "conv2d_fwd_f32_ref");
  conv2d_fwd_f32(s, x.data(), w.data(), nullptr, y3.data());
  for (size_t i = 0; i < y1.size(); ++i) CHECK(y3[i] == doctest::Approx(y1[i]).epsilon(1e-5));
}

TEST_CASE("conv2d_f32: argument checks") {
  float v = 0.0f;
  CHECK_THROWS_AS(conv2d_fwd_f32(conv(1, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2), &v, &v, nullptr, &v),
                  mpq::Error);
  CHECK_THROWS_AS(conv2d_fwd_f32(conv(1, 2, 5, 5, 2, 3, 3, 0, 1, 1, 1, 1, 1, 1, 1, 1), &v, &v, nullptr, &v),
                  mpq::Error);
  CHECK_THROWS_AS(conv2d_fwd_f32(conv(1, 2, 2, 2, 2, 5, 5, 1, 1, 0, 0, 0, 0, 1, 1, 1), &v, &v, nullptr, &v),
                  mpq::Error);
  CHECK_THROWS_AS(conv2d_bwd_data_f32(conv(1, 2, 5, 5, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1), nullptr, &v, &v),
                  mpq::Error);
}

TEST_CASE("gemm_f32 / conv2d_f32: concurrent callers (per-thread scratch, shared primitive cache)") {
  const Conv2dShape s = conv(2, 16, 9, 9, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1);
  auto x = rand_vec(size_t(2 * 16 * 81), 3), w = rand_vec(size_t(16 * 16 * 9), 4);  // [2,16,9,9], [16,16,3,3]
  std::vector<float> y_ref(size_t(2 * 16 * 81));                                    // [2,16,9,9]
  conv2d_fwd_f32_ref(s, x.data(), w.data(), nullptr, y_ref.data());
  const GemmCase gc{100, 70, 90, false, false, 0, 0.0f};
  GemmBuffers buf(gc, 5);
  std::vector<float> c_ref(buf.c0.size());  // [M, ldc]
  gemm_f32_ref(buf.args(buf.a.data(), buf.b.data(), c_ref.data()));
  std::vector<std::string> errs(2);
  auto worker = [&](int id) {
    for (int rep = 0; rep < 5; ++rep) {
      std::vector<float> y(y_ref.size()), c(c_ref.size());
      conv2d_fwd_f32(s, x.data(), w.data(), nullptr, y.data());
      gemm_f32(buf.args(buf.a.data(), buf.b.data(), c.data()));
      for (size_t i = 0; i < y.size() && errs[id].empty(); ++i)
        if (std::fabs(y[i] - y_ref[i]) > 1e-4f) errs[id] = fmt::format("conv thread {} index {}", id, i);
      for (size_t i = 0; i < c.size() && errs[id].empty(); ++i)
        if (std::fabs(c[i] - c_ref[i]) > 1e-4f) errs[id] = fmt::format("gemm thread {} index {}", id, i);
    }
  };
  std::thread t0(worker, 0), t1(worker, 1);
  t0.join();
  t1.join();
  CHECK_MESSAGE(errs[0].empty(), errs[0]);
  CHECK_MESSAGE(errs[1].empty(), errs[1]);
}
