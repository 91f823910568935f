// FP32 GEMM and conv benchmarks: our kernels next to direct oneDNN primitives, in the same run.
//
//   build-kern/bench_fp32 --benchmark_min_time=0.2
//
// Counters: GFLOP/s and % of peak. kPeakGflops = 416 is the measured-peak figure given for this machine
// type (2 cores x AVX-512 FMA, fp32, 2 threads). All benchmarks run with 2 threads and real time.
// Note: a register-only loop of independent zmm FMAs measured 116 GFLOP/s on ONE core of this VM
// (Zen 4 executes a 512-bit FMA as two 256-bit halves: 32 flop/cycle), i.e. ~233 GFLOP/s for 2 cores;
// "%peak_fma_loop" reports against that measured 233.
//
// Each benchmark also has a 1-thread variant (last argument 1) timed in thread CPU time instead of real
// time: on a shared, oversubscribed box the 2-thread real-time numbers mostly measure the other load
// (every OpenMP barrier waits for a preempted sibling), while CPU-time rates of one thread still show
// per-core kernel efficiency. Its %peak counters are against the 1-core shares (208 / 116.5).
#include <benchmark/benchmark.h>

#include <dnnl.hpp>
#include <random>
#include <vector>

#include "core/threading.h"
#include "ops/kernels/f32_impls.h"

namespace {

using namespace mpq::kernels;
constexpr double kPeakGflops = 416.0;
constexpr double kFmaLoopGflops = 233.0;
constexpr int kThreads = 2;

std::vector<float> random_vec(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

void set_counters(benchmark::State& st, double flops_per_iter, int threads) {
  const double gflop = flops_per_iter * double(st.iterations()) * 1e-9;
  const double share = double(threads) / kThreads;  // peak share of the cores in use
  st.counters["GFLOP/s"] = benchmark::Counter(gflop, benchmark::Counter::kIsRate);
  st.counters["%peak"] = benchmark::Counter(gflop * 100.0 / (kPeakGflops * share), benchmark::Counter::kIsRate);
  st.counters["%peak_fma_loop"] =
      benchmark::Counter(gflop * 100.0 / (kFmaLoopGflops * share), benchmark::Counter::kIsRate);
}
// ---- GEMM: C[M,N] = A[M,K] B[K,N], M=128 K=768 N=3072 (BERT-base FFN up-projection, 128 tokens) ----
constexpr int64_t kM = 128, kK = 768, kN = 3072;

struct GemmData {
  std::vector<float> a = random_vec(size_t(kM * kK), 1);       // [M, K]
  std::vector<float> b = random_vec(size_t(kK * kN), 2);       // [K, N]
  std::vector<float> c = std::vector<float>(size_t(kM * kN));  // [M, N]
  GemmArgs args() { return {kM, kN, kK, a.data(), kK, false, b.data(), kN, false, c.data(), kN, 0.0f}; }
};

// One of our registered implementations, by index into gemm_f32_list() (-1: the dispatcher); range(1) = threads.
void BM_gemm_f32_ours(benchmark::State& st) {
  const int threads = int(st.range(1));
  mpq::set_num_threads(threads);
  GemmData d;
  const GemmArgs g = d.args();
  const auto impls = gemm_f32_list().impls();
  const int idx = int(st.range(0));
  if (idx >= 0 && !impls[size_t(idx)].usable(g)) {
    st.SkipWithError("implementation not usable here");
    return;
  }
  const GemmFn fn = idx < 0 ? &gemm_f32 : impls[size_t(idx)].fn;
  st.SetLabel(idx < 0 ? std::string("dispatch->") + gemm_f32_impl_name(g) : impls[size_t(idx)].name);
  fn(g);  // warm-up (packing buffers, oneDNN primitive creation)
  for (auto _ : st) {
    fn(g);
    benchmark::ClobberMemory();
  }
  set_counters(st, 2.0 * kM * kN * kK, threads);
}
BENCHMARK(BM_gemm_f32_ours)->ArgsProduct({{-1, 0, 1, 2}, {kThreads}})->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_gemm_f32_ours)->ArgsProduct({{-1, 0, 1, 2}, {1}})->Unit(benchmark::kMicrosecond);

// Direct oneDNN matmul primitive, created here (not through our cache).
void BM_gemm_f32_onednn_direct(benchmark::State& st) {
  const int threads = int(st.range(0));
  mpq::set_num_threads(threads);
  GemmData d;
  using dnnl::memory;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(eng);
  memory::desc a_md({kM, kK}, memory::data_type::f32, memory::format_tag::ab);
  memory::desc b_md({kK, kN}, memory::data_type::f32, memory::format_tag::ab);
  memory::desc c_md({kM, kN}, memory::data_type::f32, memory::format_tag::ab);
  dnnl::matmul mm(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, c_md), eng));
  memory a(a_md, eng, d.a.data()), b(b_md, eng, d.b.data()), c(c_md, eng, d.c.data());
  for (auto _ : st) {
    mm.execute(s, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    s.wait();
  }
  set_counters(st, 2.0 * kM * kN * kK, threads);
}
BENCHMARK(BM_gemm_f32_onednn_direct)->Arg(kThreads)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_gemm_f32_onednn_direct)->Arg(1)->Unit(benchmark::kMicrosecond);

// ---- Conv: ResNet-50 conv2_x 3x3, N=1, 64x56x56 -> 64x56x56, stride 1, pad 1 ----
const Conv2dShape kConv{1, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1};
double conv_flops() { return 2.0 * kConv.N * kConv.O * kConv.OH() * kConv.OW() * kConv.C * kConv.KH * kConv.KW; }

// Ours: plain NCHW in/out through the dispatcher (includes the layout reorders and cache lookup).
void BM_conv3x3_f32_ours(benchmark::State& st) {
  const int threads = int(st.range(0));
  mpq::set_num_threads(threads);
  auto x = random_vec(size_t(kConv.N * kConv.C * kConv.H * kConv.W), 3);      // [N, C, H, W]
  auto w = random_vec(size_t(kConv.O * kConv.C * 9), 4);                      // [O, C, 3, 3]
  auto b = random_vec(size_t(kConv.O), 5);                                    // [O]
  std::vector<float> y(size_t(kConv.N * kConv.O * kConv.OH() * kConv.OW()));  // [N, O, OH, OW]
  st.SetLabel(conv2d_fwd_f32_list().select(kConv).name);
  conv2d_fwd_f32(kConv, x.data(), w.data(), b.data(), y.data());
  for (auto _ : st) {
    conv2d_fwd_f32(kConv, x.data(), w.data(), b.data(), y.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, conv_flops(), threads);
}
BENCHMARK(BM_conv3x3_f32_ours)->Arg(kThreads)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_conv3x3_f32_ours)->Arg(1)->Unit(benchmark::kMicrosecond);

// Direct oneDNN conv primitive. range(0) = 1: format_tag::any with activations/weights already in
// oneDNN's blocked layouts (reorders done outside the timed loop: the best case for oneDNN);
// range(0) = 0: plain nchw/oihw descriptors (no reorders anywhere).
void BM_conv3x3_f32_onednn_direct(benchmark::State& st) {
  const int threads = int(st.range(1));
  mpq::set_num_threads(threads);
  using dnnl::memory;
  using tag = memory::format_tag;
  const bool blocked = st.range(0) != 0;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(eng);
  const auto f32 = memory::data_type::f32;
  const memory::dims xd{1, 64, 56, 56}, wd{64, 64, 3, 3}, bd{64}, yd{1, 64, 56, 56};
  memory::desc x_md(xd, f32, blocked ? tag::any : tag::nchw), w_md(wd, f32, blocked ? tag::any : tag::oihw);
  memory::desc y_md(yd, f32, blocked ? tag::any : tag::nchw), b_md(bd, f32, tag::x);
  dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, x_md,
                                       w_md, b_md, y_md, {1, 1}, {0, 0}, {1, 1}, {1, 1});
  dnnl::convolution_forward::primitive_desc pd(desc, eng);
  dnnl::convolution_forward conv(pd);
  auto xv = random_vec(64 * 56 * 56, 3), wv = random_vec(64 * 64 * 9, 4), bv = random_vec(64, 5);
  memory xu({xd, f32, tag::nchw}, eng, xv.data()), wu({wd, f32, tag::oihw}, eng, wv.data());
  memory x(pd.src_desc(), eng), w(pd.weights_desc(), eng), y(pd.dst_desc(), eng), b(b_md, eng, bv.data());
  dnnl::reorder(xu, x).execute(s, xu, x);
  dnnl::reorder(wu, w).execute(s, wu, w);
  s.wait();
  st.SetLabel(blocked ? "format any, pre-reordered" : "plain nchw/oihw");
  for (auto _ : st) {
    conv.execute(s, {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, y}});
    s.wait();
  }
  set_counters(st, conv_flops(), threads);
}
BENCHMARK(BM_conv3x3_f32_onednn_direct)
    ->ArgsProduct({{1, 0}, {kThreads}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_conv3x3_f32_onednn_direct)->ArgsProduct({{1, 0}, {1}})->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
