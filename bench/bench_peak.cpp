// The machine's attainable FP32 FMA peak, measured: independent 512-bit and 256-bit FMA chains in
// registers (no memory traffic), on 1 thread and on every thread at once. The "% of peak" figures of the
// other benchmarks are only meaningful against what this loop reaches on the same machine.
//   build/bench_peak --benchmark_min_time=0.5
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

namespace {

// 12 independent accumulators hide the 4-cycle FMA latency on 2 pipes (needs >= 8 in flight).
constexpr int kChains = 12;
constexpr int64_t kIters = 1 << 20;

// flops per call: kIters * kChains * 16 lanes * 2 (mul + add)
__attribute__((target("avx512f"))) float fma_loop_zmm(float seed) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(seed + float(c));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < kIters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
  __m512 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_ps(s, acc[c]);
  return _mm512_reduce_add_ps(s);
}

// flops per call: kIters * kChains * 8 lanes * 2
float fma_loop_ymm(float seed) {
  __m256 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(seed + float(c));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < kIters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
  __m256 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm256_add_ps(s, acc[c]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

template <float (*Loop)(float), int Lanes>
void BM_fma_peak(benchmark::State& st) {
  const int threads = int(st.range(0));
  float sink = 0;
  for (auto _ : st) {
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += Loop(float(omp_get_thread_num()));
  }
  benchmark::DoNotOptimize(sink);
  const double flops = double(kIters) * kChains * Lanes * 2 * threads;
  st.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_fma_peak<fma_loop_zmm, 16>)->Name("fma_peak_zmm")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_fma_peak<fma_loop_ymm, 8>)->Name("fma_peak_ymm")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_MAIN();
