// Low-precision GEMM kernels (ops/kernels/lowp.h): every registered implementation this CPU has,
// against the reference twins, over edge shapes and every epilogue option.
//   int8 / int4 (our kernels): BIT-EXACT vs the reference: u8 outputs byte-equal, f32 outputs equal as
//     floats (same int32 accumulators, same f32 ops in the same order, see ops/kernels/lowp.h).
//   int8 via oneDNN: different f32 rounding order -> u8 within 1, f32 within 1e-5 * (1 + |ref|).
//   f16 (f32 FMA accumulation): |got - ref| <= (K + 2) * 2^-24 * S (+ 2^-11 |ref| for f16 output),
//     S = sum_k |a||w| (the standard recursive-summation bound; ref accumulates in double).
//   bf16 (vdpbf16ps; pair sums rounded once more): |got - ref| <= (K + 4) * 2^-23 * S.
//   Float paths add 2^-23 * (S + 6) for the epilogue roundings (|bias| + |residual| <= 6).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "ops/kernels/lowp.h"
#include "tests/kernel_test_util.h"

using namespace mpq;
using namespace mpq::kernels;
using mpq::testing::rand_f;
using mpq::testing::rand_u8;

namespace {

const std::vector<int64_t> kDims = {1, 3, 7, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129};

// One epilogue configuration (cycled through by the sweeps).
struct EpiCfg {
  int id;
  std::string describe() const {
    static const char* names[] = {"f32 plain",           "f32 bias relu",          "u8 bias relu6 zp",
                                  "u8 bias u8-residual", "f32 f32-residual clamp", "u8 no-bias",
                                  "u8 bias relu",        "u8 f32-residual clamp",  "u8 relu [0, 4e6] huge t"};
    return names[id];
  }
};
constexpr int kNumEpi = 9;

struct EpiData {
  std::vector<float> bias;      // [N]
  std::vector<uint8_t> res_u8;  // [M, N]
  std::vector<float> res_f32;   // [M, N]
};

LowpEpilogue make_epi(int id, int64_t M, int64_t N, EpiData& d, std::mt19937& rng) {
  LowpEpilogue ep;
  d.bias = rand_f(size_t(N), rng, -2.0f, 2.0f);
  d.res_u8 = rand_u8(size_t(M * N), rng);
  d.res_f32 = rand_f(size_t(M * N), rng, -3.0f, 3.0f);
  switch (id) {
    case 1:
      ep.bias = d.bias.data(), ep.clamp_lo = 0.0f;
      break;
    case 2:
      ep.bias = d.bias.data(), ep.clamp_lo = 0.0f, ep.clamp_hi = 6.0f;
      ep.out = DType::u8, ep.out_scale = 6.0f / 255.0f, ep.out_zp = 3;
      break;
    case 3:
      ep.bias = d.bias.data(), ep.out = DType::u8, ep.out_scale = 0.05f, ep.out_zp = 128;
      ep.residual = d.res_u8.data(), ep.residual_u8 = true, ep.ld_res = N, ep.res_scale = 0.02f, ep.res_zp = 120;
      break;
    case 4:
      ep.residual = d.res_f32.data(), ep.ld_res = N, ep.clamp_lo = -1.5f, ep.clamp_hi = 2.5f;
      break;
    case 5:
      ep.out = DType::u8, ep.out_scale = 0.1f, ep.out_zp = 7;
      break;
    case 6:
      ep.bias = d.bias.data(), ep.clamp_lo = 0.0f, ep.out = DType::u8, ep.out_scale = 0.04f, ep.out_zp = 0;
      break;
    case 7:
      ep.residual = d.res_f32.data(), ep.ld_res = N, ep.clamp_lo = -1.0f, ep.clamp_hi = 2.0f;
      ep.out = DType::u8, ep.out_scale = 0.02f, ep.out_zp = 60;
      break;
    case 8:  // t = y / out_scale reaches 4e10 > 2^31: the saturation must happen before the int conversion
      ep.bias = d.bias.data(), ep.clamp_lo = 0.0f, ep.clamp_hi = 4e6f;
      ep.out = DType::u8, ep.out_scale = 1e-4f, ep.out_zp = 2;
      break;
    default:
      break;
  }
  return ep;
}

bool is_onednn(const char* name) { return std::strstr(name, "onednn") != nullptr; }

// Compares outputs; returns "" or a description of the first mismatch.
std::string compare_out(DType out, const std::vector<uint8_t>& got, const std::vector<uint8_t>& ref, int64_t M,
                        int64_t N, int64_t ldc, double f32_abs_rel, int u8_tol, const std::vector<double>* bound) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      const size_t i = size_t(m * ldc + n);
      if (out == DType::u8) {
        const int d = std::abs(int(got[i]) - int(ref[i]));
        if (d > u8_tol) return fmt::format("u8 at (m={}, n={}): got {} ref {}", m, n, got[i], ref[i]);
      } else if (out == DType::f32) {
        float g, r;
        std::memcpy(&g, &got[i * 4], 4), std::memcpy(&r, &ref[i * 4], 4);
        const double tol = bound ? (*bound)[size_t(m * N + n)] : f32_abs_rel * (1.0 + std::fabs(r));
        if (!(std::fabs(double(g) - double(r)) <= tol))
          return fmt::format("f32 at (m={}, n={}): got {:.9g} ref {:.9g} tol {:.3g}", m, n, g, r, tol);
      } else {
        uint16_t g, r;
        std::memcpy(&g, &got[i * 2], 2), std::memcpy(&r, &ref[i * 2], 2);
        const double tol = (*bound)[size_t(m * N + n)];
        if (!(std::fabs(double(f16_to_f32(g)) - double(f16_to_f32(r))) <= tol))
          return fmt::format("f16 at (m={}, n={}): got {} ref {} tol {:.3g}", m, n, f16_to_f32(g), f16_to_f32(r), tol);
      }
    }
  return "";
}

size_t out_bytes(DType o) { return o == DType::f32 ? 4 : o == DType::f16 ? 2 : 1; }

bool onednn_can(const Q8GemmArgs&) { return true; }
bool onednn_can(const Q4GemmArgs&) { return false; }
bool onednn_can(const F16GemmArgs&) { return false; }
bool onednn_can(const BF16GemmArgs& g) { return !g.a_f32 && g.ep.out == DType::f32; }

// Runs every implementation of `list` whose ISA this CPU has against its reference (last entry).
template <class List, class Args>
void check_all_impls(const List& list, Args g, int64_t N, const std::string& params, double f32_abs_rel_onednn,
                     const std::vector<double>* bound) {
  const size_t ob = out_bytes(g.ep.out);
  const int64_t ldc = N + 5;  // leading dimension > N, to catch stride bugs
  g.ldc = ldc;
  std::vector<uint8_t> ref(size_t(g.M * ldc) * ob, 0xAB);  // [M, ldc] output bytes
  g.C = ref.data();
  list.impls().back().fn(g);
  for (const auto& impl : list.impls()) {
    // Entries are only *selected* on their preferred shapes (supports()), but every entry must compute any
    // valid arguments (ops/kernels/registry.h), so ours run here on every shape; oneDNN entries on every
    // shape they can compute (no residual; bf16: bf16 A and f32 out).
    const bool dnn = is_onednn(impl.name);
    if (!isa_detected(impl.isa) || impl.isa == Isa::ref) continue;
    if (dnn && !(impl.usable(g) || (g.ep.residual == nullptr && onednn_can(g)))) continue;
    std::vector<uint8_t> got(ref.size(), 0xAB);
    g.C = got.data();
    impl.fn(g);
    const std::string err =
        compare_out(g.ep.out, got, ref, g.M, N, ldc, dnn ? f32_abs_rel_onednn : 0.0, dnn ? 1 : 0, bound);
    INFO(fmt::format("{} {}", impl.name, params));
    CHECK_MESSAGE(err.empty(), err);
    // padding columns [N, ldc) must be untouched
    bool pad_ok = true;
    for (int64_t m = 0; m < g.M; ++m)
      for (size_t b = size_t(m * ldc + N) * ob; b < size_t((m + 1) * ldc) * ob; ++b) pad_ok &= got[b] == 0xAB;
    CHECK_MESSAGE(pad_ok, "wrote past N: ", impl.name, " ", params);
  }
}

void q8_case(int64_t M, int64_t N, int64_t K, int epi, bool a_signed, std::mt19937& rng) {
  const int64_t lda = K + 3;
  auto A = rand_u8(size_t(M * lda), rng);           // [M, lda]
  auto Wb = rand_u8(size_t(N * K), rng);            // [N, K] s8 bytes
  auto sw = rand_f(size_t(N), rng, 0.002f, 0.02f);  // [N]
  const PackedQ8W pw = pack_q8w(reinterpret_cast<const int8_t*>(Wb.data()), N, K, sw.data());
  bool pack_ok = true;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) pack_ok &= pw.at(n, k) == int8_t(Wb[size_t(n * K + k)]);
  REQUIRE_MESSAGE(pack_ok, fmt::format("pack_q8w N={} K={}", N, K));
  EpiData d;
  Q8GemmArgs g;
  g.M = M, g.A = A.data(), g.lda = lda, g.a_signed = a_signed, g.sa = 0.03f;
  g.za = a_signed ? int32_t(rng() % 256) - 128 : int32_t(rng() % 256);
  g.w = &pw;
  g.ep = make_epi(epi, M, N, d, rng);
  const std::string params = fmt::format("W8A8 M={} N={} K={} epilogue='{}' a_signed={} za={}", M, N, K,
                                         EpiCfg{epi}.describe(), a_signed, g.za);
  check_all_impls(gemm_qu8_qc8w_list(), g, N, params, 1e-5, nullptr);
}

void q4_case(int64_t M, int64_t N, int64_t K, int64_t group, int epi, std::mt19937& rng) {
  const int64_t lda = K + 1, row_bytes = (K + 1) / 2, ng = group == 0 ? 1 : K / group;
  auto A = rand_u8(size_t(M * lda), rng);              // [M, lda]
  auto Wq = rand_u8(size_t(N * row_bytes), rng);       // q4 [N, ceil(K/2)]
  auto sw = rand_f(size_t(N * ng), rng, 0.01f, 0.2f);  // [N][ng]
  const PackedQ4W pw = pack_q4w(Wq.data(), N, K, group, sw.data());
  bool pack_ok = true;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      const uint8_t b = Wq[size_t(n * row_bytes + k / 2)];
      pack_ok &= float(pw.at(n, k)) == traits(DType::q4).to_float(k % 2 ? b >> 4 : b & 0xf);
    }
  REQUIRE_MESSAGE(pack_ok, fmt::format("pack_q4w N={} K={} group={}", N, K, group));
  EpiData d;
  Q4GemmArgs g;
  g.M = M, g.A = A.data(), g.lda = lda, g.sa = 0.02f, g.za = int32_t(rng() % 256), g.w = &pw;
  g.a_signed = epi == 5;
  if (g.a_signed) g.za -= 128;
  g.ep = make_epi(epi, M, N, d, rng);
  const std::string params =
      fmt::format("W4A8 M={} N={} K={} group={} epilogue='{}' za={}", M, N, K, group, EpiCfg{epi}.describe(), g.za);
  check_all_impls(gemm_qu8_qc4w_list(), g, N, params, 1e-5, nullptr);
}

// S[m, n] = sum_k |a(m,k)| |w(n,k)| with the values the kernels see.
template <class FA, class FW>
std::vector<double> abs_dot(int64_t M, int64_t N, int64_t K, FA a, FW w) {
  std::vector<double> s(size_t(M * N), 0.0);  // [M, N]
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) s[size_t(m * N + n)] += std::fabs(a(m, k) * w(n, k));
  return s;
}

void f16_case(int64_t M, int64_t N, int64_t K, bool a_f32, bool out_f16, int epi, std::mt19937& rng) {
  const int64_t lda = K + 2;
  auto Af = rand_f(size_t(M * lda), rng, -1.0f, 1.0f);  // [M, lda]
  std::vector<uint16_t> Ah(Af.size());                  // f16 [M, lda]
  for (size_t i = 0; i < Af.size(); ++i) Ah[i] = f32_to_f16(Af[i]);
  auto Wf = rand_f(size_t(N * K), rng, -1.0f, 1.0f);  // [N, K]
  const PackedF16W pw = pack_f16w_from_f32(Wf.data(), N, K);
  EpiData d;
  F16GemmArgs g;
  g.M = M, g.A = a_f32 ? static_cast<const void*>(Af.data()) : Ah.data(), g.lda = lda, g.a_f32 = a_f32, g.w = &pw;
  g.ep = make_epi(epi == 2 || epi == 3 || epi >= 5 ? 1 : epi, M, N, d, rng);
  if (out_f16) g.ep.out = DType::f16;
  auto S = abs_dot(
      M, N, K,
      [&](int64_t m, int64_t k) {
        return a_f32 ? double(Af[size_t(m * lda + k)]) : double(f16_to_f32(Ah[size_t(m * lda + k)]));
      },
      [&](int64_t n, int64_t k) { return double(f16_to_f32(pw.at(n, k))); });
  // Tolerance on the output: accumulation bound, plus the rounding of the epilogue (bias, residual) and
  // of the output (f16: 2^-11 relative + the smallest subnormal), applied to |y| <= S + |bias| + |residual| <= S + 6.
  std::vector<double> bound(S.size());
  for (size_t i = 0; i < S.size(); ++i)
    bound[i] =
        double(K + 2) * std::ldexp(1.0, -24) * S[i] +
        (out_f16 ? std::ldexp(1.0, -11) * (S[i] + 6.0) + std::ldexp(1.0, -24) : std::ldexp(1.0, -23) * (S[i] + 6.0));
  const std::string params =
      fmt::format("F16 M={} N={} K={} a_f32={} out_f16={} epilogue={}", M, N, K, a_f32, out_f16, epi);
  check_all_impls(gemm_f16_list(), g, N, params, 0.0, &bound);
}

void bf16_case(int64_t M, int64_t N, int64_t K, bool a_f32, int epi, std::mt19937& rng) {
  const int64_t lda = K + 2;
  auto Af = rand_f(size_t(M * lda), rng, -1.0f, 1.0f);  // [M, lda]
  std::vector<uint16_t> Ab(Af.size());                  // bf16 [M, lda]
  for (size_t i = 0; i < Af.size(); ++i) Ab[i] = f32_to_bf16(Af[i]);
  auto Wf = rand_f(size_t(N * K), rng, -1.0f, 1.0f);  // [N, K]
  const PackedBF16W pw = pack_bf16w_from_f32(Wf.data(), N, K);
  EpiData d;
  BF16GemmArgs g;
  g.M = M, g.A = a_f32 ? static_cast<const void*>(Af.data()) : Ab.data(), g.lda = lda, g.a_f32 = a_f32, g.w = &pw;
  g.ep = make_epi(epi == 2 || epi == 3 || epi >= 5 ? 1 : epi, M, N, d, rng);
  auto S = abs_dot(
      M, N, K, [&](int64_t m, int64_t k) { return double(bf16_to_f32(Ab[size_t(m * lda + k)])); },
      [&](int64_t n, int64_t k) { return double(bf16_to_f32(pw.at(n, k))); });
  std::vector<double> bound(S.size());
  for (size_t i = 0; i < S.size(); ++i)
    bound[i] = double(K + 4) * std::ldexp(1.0, -23) * S[i] + std::ldexp(1.0, -23) * (S[i] + 6.0);
  const std::string params = fmt::format("BF16 M={} N={} K={} a_f32={} epilogue={}", M, N, K, a_f32, epi);
  check_all_impls(gemm_bf16_list(), g, N, params, 0.0, &bound);
}

}  // namespace

TEST_CASE("lowp: W8A8 gemm_qu8_qc8w, every impl vs reference (bit-exact), edge shapes x epilogues") {
  std::mt19937 rng(11);
  const size_t nd = kDims.size();
  for (size_t im = 0; im < nd; ++im)
    for (size_t in = 0; in < nd; ++in) {
      const int64_t K = kDims[(im * 7 + in * 3) % nd];
      q8_case(kDims[im], kDims[in], K, int((im + in) % kNumEpi), (im + 2 * in) % 3 == 0, rng);
    }
  for (int64_t K : kDims) q8_case(17, 33, K, int(K % kNumEpi), K % 2 == 0, rng);
  q8_case(200, 96, 1000, 2, false, rng);  // multi-thread split, several chunks
}

TEST_CASE("lowp: W4A8 gemm_qu8_qc4w, per-channel and group 32/64/128 (bit-exact)") {
  std::mt19937 rng(12);
  const size_t nd = kDims.size();
  for (size_t im = 0; im < nd; im += 2)
    for (size_t in = 0; in < nd; ++in)
      q4_case(kDims[im], kDims[in], kDims[(im * 5 + in) % nd], 0, int(in % kNumEpi), rng);
  for (int64_t group : {32, 64, 128})
    for (int64_t K : {128, 256, 384})
      for (int64_t M : {1, 7, 15, 16, 33})
        for (int64_t N : {1, 17, 32, 65}) q4_case(M, N, K, group, int((M + N + K / 32) % kNumEpi), rng);
  q4_case(150, 128, 512, 64, 1, rng);
  // GEMV-like tiles of 1 and 2 rows split their k-steps over two accumulator sets: even and odd step counts,
  // alone (M = 1, 2) and as the tail of a 12-row tile (M = 14)
  for (int64_t M : {1, 2, 14})
    for (int64_t K : {4, 8, 12, 60, 64, 68, 1000}) q4_case(M, 45, K, 0, int((M + K) % kNumEpi), rng);
  // Panel-major order (unpacked panels of 128 KiB: more than the 512 KiB tile-major budget per thread) and
  // two A chunks (tiles of 14 x 4096 packed bytes), u8 A read in place and s8 A packed.
  q4_case(100, 260, 4096, 0, 3, rng);
  q4_case(100, 260, 4096, 0, 5, rng);
}

TEST_CASE("lowp: FP16 gemm_f16 (f16 or f32 A, f32 or f16 out) within the f32 summation bound") {
  std::mt19937 rng(13);
  const size_t nd = kDims.size();
  for (size_t im = 0; im < nd; im += 2)
    for (size_t in = 0; in < nd; ++in)
      f16_case(kDims[im], kDims[in], kDims[(im * 3 + in * 5) % nd], in % 2 == 0, im % 4 == 0, int(in % kNumEpi), rng);
}

TEST_CASE("lowp: BF16 gemm_bf16 (bf16 or f32 A) within the bf16-dot summation bound") {
  std::mt19937 rng(14);
  const size_t nd = kDims.size();
  for (size_t im = 0; im < nd; im += 2)
    for (size_t in = 0; in < nd; ++in)
      bf16_case(kDims[im], kDims[in], kDims[(im * 3 + in * 5) % nd], im % 4 == 2, int(in % kNumEpi), rng);
  // f32 A rows longer than the AVX-512 packer's 512-column rounding chunk: two full chunks plus an odd tail,
  // and an exact multiple of the chunk
  bf16_case(5, 33, 1031, true, 0, rng);
  bf16_case(3, 17, 1024, true, 1, rng);
}

TEST_CASE("lowp: dispatch honours the ISA cap and names the implementation") {
  std::mt19937 rng(15);
  auto Wb = rand_u8(64 * 64, rng);
  std::vector<float> sw(64, 0.01f);
  const PackedQ8W pw = pack_q8w(reinterpret_cast<const int8_t*>(Wb.data()), 64, 64, sw.data());
  auto A = rand_u8(64 * 64, rng);
  std::vector<float> c(64 * 64), c_ref(64 * 64);
  Q8GemmArgs g;
  g.M = 64, g.A = A.data(), g.lda = 64, g.w = &pw, g.C = c.data(), g.ldc = 64, g.za = 5;
  {
    ScopedIsaCap cap(Isa::ref);
    CHECK(std::string(gemm_qu8_qc8w_list().select(g).name) == "gemm_qu8_qc8w_ref");
    g.C = c_ref.data();
    gemm_qu8_qc8w(g);
  }
  {
    ScopedIsaCap cap(Isa::avx2);  // the AVX2 fallback, bit-exact
    CHECK(std::string(gemm_qu8_qc8w_list().select(g).name) == "gemm_qu8_qc8w_1x32c4__avx2");
    CHECK(std::string(gemm_qu8_qc4w_list().impls().back().name) == "gemm_qu8_qc4w_ref");
    g.C = c.data();
    gemm_qu8_qc8w(g);
    CHECK(c == c_ref);
  }
  if (isa_detected(Isa::avx512_vnni)) {
    ScopedIsaCap cap(Isa::avx512);
    CHECK(std::string(gemm_qu8_qc8w_list().select(g).name) == "gemm_qu8_qc8w__onednn");  // K = 64: small K
    g.C = c.data();
    gemm_qu8_qc8w(g);
    for (size_t i = 0; i < c.size(); ++i) CHECK(std::fabs(c[i] - c_ref[i]) <= 1e-5f * (1.0f + std::fabs(c_ref[i])));
    gemm_qu8_qc8w_14x32c4__avx512vnni(g);
    g.C = c.data();
    gemm_qu8_qc8w(g);
    CHECK(c == c_ref);
  }
}

TEST_CASE("lowp: argument checks name the bad field") {
  std::vector<int8_t> W(8 * 8, 1);
  std::vector<float> s(8, 1.0f);
  CHECK_THROWS_WITH_AS(pack_q4w(reinterpret_cast<const uint8_t*>(W.data()), 8, 40, 32, s.data()),
                       doctest::Contains("multiple of group"), mpq::Error);
  const PackedQ8W pw = pack_q8w(W.data(), 8, 8, s.data());
  std::vector<uint8_t> A(64);
  std::vector<float> C(64);
  Q8GemmArgs g;
  g.M = 8, g.A = A.data(), g.lda = 4, g.w = &pw, g.C = C.data(), g.ldc = 8;
  CHECK_THROWS_WITH_AS(gemm_qu8_qc8w(g), doctest::Contains("lda=4"), mpq::Error);
  g.lda = 8, g.za = 300;
  CHECK_THROWS_WITH_AS(gemm_qu8_qc8w(g), doctest::Contains("zero point 300"), mpq::Error);
  g.za = 0, g.ep.out = mpq::DType::i8;  // a DType that is no activation format
  CHECK_THROWS_WITH_AS(gemm_qu8_qc8w(g), doctest::Contains("not i8"), mpq::Error);
  g.ep.out = mpq::DType::u8, g.ep.out_scale = 0.1f, g.ep.out_zp = 256;
  CHECK_THROWS_WITH_AS(gemm_qu8_qc8w(g), doctest::Contains("zero point 256"), mpq::Error);
}

TEST_CASE("lowp: oneDNN int8 binds bias values per call (cached primitive, changed bias)") {
  if (!isa_detected(Isa::avx512_vnni)) return;
  std::mt19937 rng(16);
  auto Wb = rand_u8(32 * 40, rng);
  std::vector<float> sw(32, 0.01f), bias(32, 1.0f);  // [N]
  const PackedQ8W pw = pack_q8w(reinterpret_cast<const int8_t*>(Wb.data()), 32, 40, sw.data());
  auto A = rand_u8(5 * 40, rng);
  std::vector<float> c(5 * 32), c_ref(5 * 32);
  Q8GemmArgs g;
  g.M = 5, g.A = A.data(), g.lda = 40, g.w = &pw, g.ldc = 32, g.za = 9, g.sa = 0.1f;
  g.ep.bias = bias.data();
  for (float b : {1.0f, -2.0f}) {
    std::fill(bias.begin(), bias.end(), b);  // same pointer, new values
    g.C = c.data();
    gemm_qu8_qc8w__onednn(g);
    g.C = c_ref.data();
    gemm_qu8_qc8w_ref(g);
    for (size_t i = 0; i < c.size(); ++i)
      CHECK_MESSAGE(std::fabs(c[i] - c_ref[i]) <= 1e-5f * (1.0f + std::fabs(c_ref[i])), "bias=", b, " i=", i);
  }
}
