// Low-precision GEMM benchmarks on the model shapes: our kernels next to oneDNN, in the same run,
// alternating per shape.
//
//   build-lowp/bench_lowp --benchmark_min_time=0.2                          (2 threads)
//   MPQ_BENCH_THREADS=1 build-lowp/bench_lowp --benchmark_min_time=0.2      (1 core; %peak per core)
//
// On a shared, loaded machine the 2-thread wall times quantise to the scheduler slice (~4-8 ms per call
// while another process holds the second core); the 1-thread CPU-time column is then the usable one
// (GOP/s = 2*M*N*K / cpu_time, see the commit messages for the measured table).
//
// Every benchmark runs with 2 threads, f32 output + bias epilogue (the common case between layers).
// Counters: GOP/s (2*M*N*K per call), %peak of the unit that does the work (machine's given peaks,
// 2 cores: INT8 VNNI 1650 GOP/s (int8 and int4), FP32 FMA 416 GFLOP/s (f16 weights compute in f32),
// BF16 800 GFLOP/s), and wMB = packed weight bytes (what int4 halves).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/threading.h"
#include "ops/kernels_lowp.h"

namespace {

using namespace mpq::kernels;
// Threads: 2 (both cores); MPQ_BENCH_THREADS=1 measures one core (peaks are then halved in %peak).
int threads() {
  const char* e = std::getenv("MPQ_BENCH_THREADS");
  return e ? std::atoi(e) : 2;
}
constexpr double kPeakInt8 = 1650.0, kPeakF32 = 416.0, kPeakBf16 = 800.0;

struct Shape {
  const char* model;
  int64_t M, N, K;
};
// ResNet50 1x1 convs at batch 1 as GEMM (M = H*W), MobileNetV2 1x1 convs, BERT-base linears at seq 128.
const Shape kShapes[] = {
    {"bert_qkv", 128, 768, 768},
    {"bert_ffn_up", 128, 3072, 768},
    {"bert_ffn_down", 128, 768, 3072},
    {"rn50_l1_c3", 3136, 256, 64},
    {"rn50_l2_c1", 784, 128, 512},
    {"rn50_l3_c1", 196, 256, 1024},
    {"rn50_l4_c1", 49, 512, 2048},
    {"mnv2_b3_exp", 3136, 144, 24},
    {"mnv2_b7_exp", 784, 192, 32},
    {"mnv2_b14_proj", 196, 64, 384},
    {"mnv2_last", 49, 1280, 320},
    // Weight-bandwidth-bound cases (one or a few tokens), where int4's halved weight bytes can pay off.
    {"bert_ffn_up_m1", 1, 3072, 768},
    {"bert_ffn_up_m8", 8, 3072, 768},
    // A GEMV whose int8 weights (64 MiB) exceed the 32 MiB L3: DRAM-bound, int4 halves the traffic.
    {"gemv_dram", 1, 16384, 4096},
};

template <class T>
std::vector<T> rand_vec(size_t n, unsigned seed, int lo, int hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = T(d(rng));
  return v;
}
std::vector<float> rand_f(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

void set_counters(benchmark::State& st, const Shape& s, double peak, size_t wbytes) {
  const double gop = 2.0 * double(s.M) * double(s.N) * double(s.K) * double(st.iterations()) * 1e-9;
  st.counters["GOP/s"] = benchmark::Counter(gop, benchmark::Counter::kIsRate);
  st.counters["%peak"] = benchmark::Counter(gop * 100.0 / (peak * threads() / 2.0), benchmark::Counter::kIsRate);
  st.counters["wMB"] = double(wbytes) * 1e-6;
}

template <class List>
typename List::Impl find_impl(const List& list, const std::string& name) {
  for (const auto& i : list.impls())
    if (name == i.name) return i;
  return list.impls().back();
}

template <class Args, class Fn>
void time_it(benchmark::State& st, const Args& g, Fn fn, const char* name) {
  st.SetLabel(name);
  fn(g);  // warm-up: oneDNN primitive creation, packing buffers
  for (auto _ : st) {
    fn(g);
    benchmark::ClobberMemory();
  }
}

// kind: "q8" | "q8s" (s8 activations) | "q4" (per channel) | "q4g128" | "f16" | "bf16"; impl: list entry name.
void bm(benchmark::State& st, Shape s, std::string kind, std::string impl) {
  mpq::set_num_threads(threads());
  std::vector<float> C(size_t(s.M * s.N));   // [M, N] f32
  const auto bias = rand_f(size_t(s.N), 3);  // [N]
  LowpEpilogue ep;
  ep.bias = bias.data();
  if (kind == "q8" || kind == "q8s") {
    const auto A = rand_vec<uint8_t>(size_t(s.M * s.K), 1, 0, 255);    // [M, K]
    const auto W = rand_vec<int8_t>(size_t(s.N * s.K), 2, -127, 127);  // [N, K]
    const std::vector<float> sw(size_t(s.N), 0.01f);                   // [N]
    const PackedQ8W pw = pack_q8w(W.data(), s.N, s.K, sw.data());
    Q8GemmArgs g;
    g.M = s.M, g.A = A.data(), g.lda = s.K, g.a_signed = kind == "q8s", g.sa = 0.02f, g.za = g.a_signed ? 3 : 128;
    g.w = &pw, g.C = C.data(), g.ldc = s.N, g.ep = ep;
    const auto i = find_impl(gemm_qu8_qc8w_list(), impl);
    if (!mpq::isa_detected(i.isa)) return st.SkipWithError("ISA not available");
    time_it(st, g, i.fn, i.name);
    set_counters(st, s, kPeakInt8, pw.weight_bytes());
  } else if (kind == "q4" || kind == "q4g128") {
    const int64_t group = kind == "q4" ? 0 : 128;
    if (group && s.K % group) return st.SkipWithError("K not a multiple of 128");
    const auto A = rand_vec<uint8_t>(size_t(s.M * s.K), 1, 0, 255);              // [M, K]
    const auto W = rand_vec<uint8_t>(size_t(s.N * ((s.K + 1) / 2)), 2, 0, 255);  // q4 [N, K/2]
    const std::vector<float> sw(size_t(s.N * (group ? s.K / group : 1)), 0.01f);
    const PackedQ4W pw = pack_q4w(W.data(), s.N, s.K, group, sw.data());
    Q4GemmArgs g;
    g.M = s.M, g.A = A.data(), g.lda = s.K, g.sa = 0.02f, g.za = 128, g.w = &pw, g.C = C.data(), g.ldc = s.N, g.ep = ep;
    const auto i = find_impl(gemm_qu8_qc4w_list(), impl);
    if (!mpq::isa_detected(i.isa)) return st.SkipWithError("ISA not available");
    time_it(st, g, i.fn, i.name);
    set_counters(st, s, kPeakInt8, pw.weight_bytes());
  } else if (kind == "f16") {
    const auto Af = rand_f(size_t(s.M * s.K), 1);  // [M, K] -> f16
    std::vector<uint16_t> A(Af.size());
    for (size_t j = 0; j < A.size(); ++j) A[j] = mpq::f32_to_f16(Af[j]);
    const auto W = rand_f(size_t(s.N * s.K), 2);  // [N, K]
    const PackedF16W pw = pack_f16w_from_f32(W.data(), s.N, s.K);
    F16GemmArgs g;
    g.M = s.M, g.A = A.data(), g.lda = s.K, g.w = &pw, g.C = C.data(), g.ldc = s.N, g.ep = ep;
    const auto i = find_impl(gemm_f16_list(), impl);
    if (!mpq::isa_detected(i.isa)) return st.SkipWithError("ISA not available");
    time_it(st, g, i.fn, i.name);
    set_counters(st, s, kPeakF32, pw.w.bytes);
  } else {
    const auto Af = rand_f(size_t(s.M * s.K), 1);  // [M, K] -> bf16
    std::vector<uint16_t> A(Af.size());
    for (size_t j = 0; j < A.size(); ++j) A[j] = mpq::f32_to_bf16(Af[j]);
    const auto W = rand_f(size_t(s.N * s.K), 2);  // [N, K]
    const PackedBF16W pw = pack_bf16w_from_f32(W.data(), s.N, s.K);
    BF16GemmArgs g;
    g.M = s.M, g.A = A.data(), g.lda = s.K, g.w = &pw, g.C = C.data(), g.ldc = s.N, g.ep = ep;
    const auto i = find_impl(gemm_bf16_list(), impl);
    if (!mpq::isa_detected(i.isa)) return st.SkipWithError("ISA not available");
    time_it(st, g, i.fn, i.name);
    set_counters(st, s, kPeakBf16, pw.w.bytes);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::pair<const char*, const char*> runs[] = {
      {"q8", "gemm_qu8_qc8w_14x32c4__avx512vnni"},     {"q8", "gemm_qu8_qc8w__onednn"},
      {"q8s", "gemm_qu8_qc8w_14x32c4__avx512vnni"},    {"q4", "gemm_qu8_qc4w_12x32c4__avx512vnni"},
      {"q4g128", "gemm_qu8_qc4w_12x32c4__avx512vnni"}, {"f16", "gemm_f16_14x32__avx512"},
      {"bf16", "gemm_bf16_14x32c2__avx512bf16"},       {"bf16", "gemm_bf16__onednn"},
  };
  for (const Shape& s : kShapes)
    for (const auto& [kind, impl] : runs) {
      const std::string name = std::string(s.model) + "/" + kind + "/" + impl;
      benchmark::RegisterBenchmark(name.c_str(), bm, s, std::string(kind), std::string(impl))
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
