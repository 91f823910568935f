// Shared by the GEMM benchmarks (bench_lowp, bench_model_shapes, bench_membound): this machine's peaks,
// random operands, and one GEMM "case" per (shape, precision, implementation) that owns its packed weights,
// inputs and output and runs one call. Header-only: every bench_*.cpp is its own executable.
//
// Every case computes C[M,N] (f32) = A[M,K] * W[N,K]^T + bias[N], the common layer-to-layer epilogue; W is
// packed once outside the timed loop (the runtime packs at load). Precisions:
//   q8      W8A8: u8 activations (zero point 128), int8 per-channel weights      gemm_qu8_qc8w list
//   q8s     same with s8 activations                                             gemm_qu8_qc8w list
//   q4      W4A8: int4 weights, one scale per output channel                     gemm_qu8_qc4w list
//   q4g128  W4A8: int4 weights, one scale per group of 128 input channels        gemm_qu8_qc4w list
//   f16     f16 weights and activations, f32 FMAs                                gemm_f16 list
//   bf16    bf16 weights and activations, vdpbf16ps                              gemm_bf16 list
//   f32     f32, W stored [N, K] (trans_b, the linear layer's layout); packed    gemm_f32 list
//           per call by our driver (what the runtime's matmul does today)
// impl names an entry of that precision's dispatch list ("dispatch" = what the runtime would pick).
#pragma once
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <ctime>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/threading.h"
#include "ops/kernels/f32_impls.h"
#include "ops/kernels/lowp.h"

namespace mpq::bench {

// Peaks of the unit that does the work, for the 2 cores of this machine (GOP/s; one MAC = 2 ops).
// quoted: the figures given for this machine kind. measured: build/bench_peak (register-only chains of
// vfmadd231ps / vpdpbusd / vdpbf16ps zmm, per-thread CPU-time rate x 2): 116 / 463 / 234 per core. The
// core is a Zen 4 (cpuid family 0x19 model 0x11), which issues 512-bit ops as two 256-bit halves, so
// every measured peak is about 56 % of the quoted one. f16-weight GEMMs compute in f32 (FMA peak);
// int4 GEMMs unpack to int8 and use vpdpbusd (VNNI peak).
struct Peak {
  double quoted, measured;
};
inline constexpr Peak kPeakInt8{1650.0, 926.0}, kPeakF32{416.0, 231.0}, kPeakBf16{800.0, 467.0};

// Threads: 2 (both cores); MPQ_BENCH_THREADS=1 measures one core (the peaks are then halved in %).
inline int threads() {
  const char* e = std::getenv("MPQ_BENCH_THREADS");
  return e ? std::atoi(e) : 2;
}

template <class T>
std::vector<T> rand_vec(size_t n, unsigned seed, int lo, int hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = T(d(rng));
  return v;
}
inline std::vector<float> rand_f(size_t n, unsigned seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

struct GemmShape {
  std::string name;  // model_layer
  int64_t M, N, K;
  int count = 1;  // occurrences in the model (informational)
};

inline Peak peak_of(const std::string& prec) {
  if (prec == "bf16") return kPeakBf16;
  if (prec == "f16" || prec == "f32") return kPeakF32;
  return kPeakInt8;
}

// One runnable GEMM. copies > 1 packs that many copies of the weights at distinct addresses and run(i)
// uses copy i % copies, so that consecutive calls read weights that are not in cache.
struct GemmCase {
  std::string label;        // implementation run (and the dispatcher's choice when different)
  std::string error;        // non-empty: cannot run here (ISA missing, shape unsupported)
  size_t weight_bytes = 0;  // packed weight bytes of one copy
  size_t copies = 1;
  std::function<void(size_t)> run;
};

namespace detail {
template <class List>
const typename List::Impl* find_impl(const List& list, const std::string& name) {
  for (const auto& i : list.impls())
    if (name == i.name) return &i;
  return nullptr;
}

// Resolves impl against list for args g; fills label / error; returns the function or nullptr.
template <class List, class Args>
auto resolve(const List& list, const std::string& impl, const Args& g, GemmCase& c) -> decltype(list.impls()[0].fn) {
  const auto& chosen = list.select(g);
  if (impl == "dispatch") {
    c.label = std::string("dispatch->") + chosen.name;
    return chosen.fn;
  }
  const auto* i = find_impl(list, impl);
  if (i == nullptr) {
    c.error = "no implementation named " + impl;
    return nullptr;
  }
  if (!isa_detected(i->isa)) {
    c.error = "ISA not available";
    return nullptr;
  }
  c.label = impl == chosen.name ? impl : impl + " (dispatch: " + chosen.name + ")";
  return i->fn;
}

template <class PW, class Args, class Fn>
void bind(GemmCase& c, std::shared_ptr<std::vector<PW>> pw, Args g, Fn fn) {
  c.run = [pw, g, fn](size_t i) mutable {
    g.w = &(*pw)[i % pw->size()];
    fn(g);
  };
}
}  // namespace detail

// Owning state of a case: operands live as long as the run closure.
inline GemmCase make_gemm_case(const GemmShape& s, const std::string& prec, const std::string& impl,
                               size_t copies = 1) {
  using namespace mpq::kernels;
  GemmCase c;
  c.copies = copies;
  auto C = std::make_shared<std::vector<float>>(size_t(s.M * s.N));          // [M, N] f32
  auto bias = std::make_shared<std::vector<float>>(rand_f(size_t(s.N), 3));  // [N]
  LowpEpilogue ep;
  ep.bias = bias->data();
  auto keep = [C, bias](auto fn) { return [C, bias, fn](size_t i) mutable { fn(i); }; };
  if (prec == "q8" || prec == "q8s") {
    auto A = std::make_shared<std::vector<uint8_t>>(rand_vec<uint8_t>(size_t(s.M * s.K), 1, 0, 255));  // [M, K]
    const auto W = rand_vec<int8_t>(size_t(s.N * s.K), 2, -127, 127);                                  // [N, K]
    const std::vector<float> sw(size_t(s.N), 0.01f);                                                   // [N]
    auto pw = std::make_shared<std::vector<PackedQ8W>>();
    for (size_t i = 0; i < copies; ++i) pw->push_back(pack_q8w(W.data(), s.N, s.K, sw.data()));
    Q8GemmArgs g;
    g.M = s.M, g.A = A->data(), g.lda = s.K, g.a_signed = prec == "q8s", g.sa = 0.02f, g.za = g.a_signed ? 3 : 128;
    g.w = &(*pw)[0], g.C = C->data(), g.ldc = s.N, g.ep = ep;
    const auto fn = detail::resolve(gemm_qu8_qc8w_list(), impl, g, c);
    if (!fn) return c;
    c.weight_bytes = (*pw)[0].weight_bytes();
    detail::bind(c, pw, g, fn);
    c.run = keep([A, r = c.run](size_t i) { r(i); });
  } else if (prec == "q4" || prec == "q4g128") {
    const int64_t group = prec == "q4" ? 0 : 128;
    if (group && s.K % group) {
      c.error = "K not a multiple of 128";
      return c;
    }
    auto A = std::make_shared<std::vector<uint8_t>>(rand_vec<uint8_t>(size_t(s.M * s.K), 1, 0, 255));  // [M, K]
    const auto W = rand_vec<uint8_t>(size_t(s.N * ((s.K + 1) / 2)), 2, 0, 255);   // q4 [N, (K+1)/2]
    const std::vector<float> sw(size_t(s.N * (group ? s.K / group : 1)), 0.01f);  // [N] or [N][K/128]
    auto pw = std::make_shared<std::vector<PackedQ4W>>();
    for (size_t i = 0; i < copies; ++i) pw->push_back(pack_q4w(W.data(), s.N, s.K, group, sw.data()));
    Q4GemmArgs g;
    g.M = s.M, g.A = A->data(), g.lda = s.K, g.sa = 0.02f, g.za = 128, g.w = &(*pw)[0], g.C = C->data(), g.ldc = s.N;
    g.ep = ep;
    const auto fn = detail::resolve(gemm_qu8_qc4w_list(), impl, g, c);
    if (!fn) return c;
    c.weight_bytes = (*pw)[0].weight_bytes();
    detail::bind(c, pw, g, fn);
    c.run = keep([A, r = c.run](size_t i) { r(i); });
  } else if (prec == "f16" || prec == "bf16") {
    const bool f16 = prec == "f16";
    const auto Af = rand_f(size_t(s.M * s.K), 1);
    auto A = std::make_shared<std::vector<uint16_t>>(Af.size());  // [M, K] f16 or bf16 bits
    for (size_t j = 0; j < Af.size(); ++j) (*A)[j] = f16 ? f32_to_f16(Af[j]) : f32_to_bf16(Af[j]);
    const auto W = rand_f(size_t(s.N * s.K), 2);  // [N, K]
    if (f16) {
      auto pw = std::make_shared<std::vector<PackedF16W>>();
      for (size_t i = 0; i < copies; ++i) pw->push_back(pack_f16w_from_f32(W.data(), s.N, s.K));
      F16GemmArgs g;
      g.M = s.M, g.A = A->data(), g.lda = s.K, g.w = &(*pw)[0], g.C = C->data(), g.ldc = s.N, g.ep = ep;
      const auto fn = detail::resolve(gemm_f16_list(), impl, g, c);
      if (!fn) return c;
      c.weight_bytes = (*pw)[0].w.bytes;
      detail::bind(c, pw, g, fn);
    } else {
      auto pw = std::make_shared<std::vector<PackedBF16W>>();
      for (size_t i = 0; i < copies; ++i) pw->push_back(pack_bf16w_from_f32(W.data(), s.N, s.K));
      BF16GemmArgs g;
      g.M = s.M, g.A = A->data(), g.lda = s.K, g.w = &(*pw)[0], g.C = C->data(), g.ldc = s.N, g.ep = ep;
      const auto fn = detail::resolve(gemm_bf16_list(), impl, g, c);
      if (!fn) return c;
      c.weight_bytes = (*pw)[0].w.bytes;
      detail::bind(c, pw, g, fn);
    }
    c.run = keep([A, r = c.run](size_t i) { r(i); });
  } else if (prec == "f32") {
    auto A = std::make_shared<std::vector<float>>(rand_f(size_t(s.M * s.K), 1));  // [M, K]
    auto W = std::make_shared<std::vector<std::vector<float>>>();                 // copies x [N, K]
    W->push_back(rand_f(size_t(s.N * s.K), 2));
    for (size_t i = 1; i < copies; ++i) W->push_back((*W)[0]);
    GemmArgs g{s.M, s.N, s.K, A->data(), s.K, false, (*W)[0].data(), s.K, true, C->data(), s.N, 0.0f};
    const auto fn = detail::resolve(gemm_f32_list(), impl, g, c);
    if (!fn) return c;
    c.weight_bytes = (*W)[0].size() * sizeof(float);
    c.run = keep([A, W, g, fn](size_t i) mutable {
      g.B = (*W)[i % W->size()].data();
      fn(g);
    });
  } else {
    c.error = "unknown precision " + prec;
  }
  return c;
}

// CPU seconds consumed by all threads of this process.
inline double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// The case of the current benchmark, built once and reused across the calls Google Benchmark makes while
// sizing iterations and across repetitions (building can take a second for 100+ MiB of weight copies);
// the previous benchmark's case is freed first.
inline GemmCase& cached_case(const GemmShape& s, const std::string& prec, const std::string& impl, size_t copies) {
  static std::string key;
  static std::unique_ptr<GemmCase> c;
  const std::string k = s.name + "/" + std::to_string(s.M) + "x" + std::to_string(s.N) + "x" + std::to_string(s.K) +
                        "/" + prec + "/" + impl + "/" + std::to_string(copies);
  if (!c || k != key) {
    c.reset();
    c = std::make_unique<GemmCase>(make_gemm_case(s, prec, impl, copies));
    key = k;
    // Warm-up, one call per weight copy: oneDNN creates (and caches) a primitive with its own reordered
    // weights per packed copy, which must not be timed; our drivers size their packing buffers.
    if (c->error.empty())
      for (size_t i = 0; i < copies; ++i) c->run(i);
  }
  return *c;
}

// Runs a case in the benchmark loop. Counters: GOP/s (2*M*N*K per call over real time), %peak / %mpeak
// (against the quoted / measured peak of the threads in use), wbytes (packed weight bytes of one copy),
// cpuGOP/s = ops x threads / CPU seconds of the whole process: the rate the threads would reach if each had
// its core to itself. With OMP_WAIT_POLICY=passive (waiting threads sleep) it leaves out the time other
// processes held the cores, so it is the usable figure on a loaded machine; it assumes perfect parallel
// scaling (load imbalance and barrier waits are not charged) and with spinning waits it under-reports.
inline void run_gemm_case(benchmark::State& st, const GemmShape& s, const std::string& prec, const std::string& impl,
                          size_t copies = 1) {
  mpq::set_num_threads(threads());
  GemmCase& c = cached_case(s, prec, impl, copies);
  if (!c.error.empty()) return st.SkipWithError(c.error.c_str());
  st.SetLabel(c.label);
  size_t i = 1;
  const double cpu0 = process_cpu_seconds();
  for (auto _ : st) {
    c.run(i++);
    benchmark::ClobberMemory();
  }
  const double cpu = process_cpu_seconds() - cpu0;
  const Peak pk = peak_of(prec);
  const double share = threads() / 2.0;  // fraction of the 2-core peak in use
  const double gop = 2.0 * double(s.M) * double(s.N) * double(s.K) * double(st.iterations()) * 1e-9;
  st.counters["GOP/s"] = benchmark::Counter(gop, benchmark::Counter::kIsRate);
  st.counters["%peak"] = benchmark::Counter(gop * 100.0 / (pk.quoted * share), benchmark::Counter::kIsRate);
  st.counters["%mpeak"] = benchmark::Counter(gop * 100.0 / (pk.measured * share), benchmark::Counter::kIsRate);
  st.counters["cpuGOP/s"] = cpu > 0 ? gop * threads() / cpu : 0.0;
  st.counters["wbytes"] =
      benchmark::Counter(double(c.weight_bytes), benchmark::Counter::kDefaults, benchmark::Counter::kIs1024);
}

}  // namespace mpq::bench
