// The machine's attainable compute peaks, measured: independent chains of one instruction in registers
// (no memory traffic), on 1 thread and on 2 threads at once, for the three units the kernels use:
//   fp32 FMA        vfmadd231ps   zmm 16 lanes x 2 flop,  ymm 8 x 2      (fp32 and fp16-weight GEMMs)
//   int8 VNNI       vpdpbusd      zmm 16 lanes x 4 u8*s8 MACs x 2 ops,  ymm 8 x 4 x 2   (int8 and int4 GEMMs)
//   bf16 dot        vdpbf16ps     zmm 16 lanes x 2 bf16 MACs x 2 flop,  ymm 8 x 2 x 2   (bf16 GEMMs)
// The "% of peak" figures of the other benchmarks are only meaningful against what these loops reach on the
// same machine (bench/bench_util.h holds the figures measured here next to the quoted ones).
// Counters: GOP/s = 10^9 operations per wall-clock second over all threads (one FMA / MAC = 2 operations);
// core_GOP/s = the same per thread but over that thread's own CPU time (CLOCK_THREAD_CPUTIME_ID), which
// stays meaningful when other processes share the cores (preemption stops the thread's CPU clock too).
//   build/bench_peak --benchmark_min_time=0.5 --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <cstdint>
#include <ctime>

namespace {

// 12 independent accumulators: enough to cover 2 pipes x up to 6 cycles of latency (FMA 4, VNNI / BF16
// dot products 4-6 on current x86 cores), so the loops measure throughput, not latency.
constexpr int kChains = 12;
constexpr int64_t kIters = 1 << 20;

// ---- fp32 FMA: ops per call kIters * kChains * lanes * 2 ----
__attribute__((target("avx512f"))) double fma_loop_zmm(int seed) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(float(seed + c));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < kIters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
  __m512 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_ps(s, acc[c]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) double fma_loop_ymm(int seed) {
  __m256 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(float(seed + c));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < kIters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
  __m256 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm256_add_ps(s, acc[c]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

// ---- int8 VNNI: acc(i32) += sum of 4 u8*s8 products per lane; ops per call kIters * kChains * lanes * 8 ----
// The accumulators wrap (vpdpbusd does not saturate); only the instruction count matters here.
__attribute__((target("avx512f,avx512vnni"))) double vnni_loop_zmm(int seed) {
  __m512i acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_epi32(seed + c);
  const __m512i a = _mm512_set1_epi8(char(3 + seed)), b = _mm512_set1_epi8(-5);
  for (int64_t i = 0; i < kIters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
  __m512i s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_epi32(s, acc[c]);
  return double(_mm512_reduce_add_epi32(s));
}

__attribute__((target("avx512f,avx512vl,avx512vnni"))) double vnni_loop_ymm(int seed) {
  __m256i acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_epi32(seed + c);
  const __m256i a = _mm256_set1_epi8(char(3 + seed)), b = _mm256_set1_epi8(-5);
  for (int64_t i = 0; i < kIters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_dpbusd_epi32(acc[c], a, b);
  __m256i s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm256_add_epi32(s, acc[c]);
  return double(_mm256_extract_epi32(s, 0));
}

// ---- bf16 dot: acc(f32) += a0*b0 + a1*b1 per lane; ops per call kIters * kChains * lanes * 4 ----
__attribute__((target("avx512f,avx512bf16"))) double bf16_loop_zmm(int seed) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(float(seed + c));
  // bf16 pairs of 1e-4 (0x38d1): small enough that the accumulators stay finite over 2^20 steps.
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x38d1), b = (__m512bh)_mm512_set1_epi16(short(0x3f80 + seed));
  for (int64_t i = 0; i < kIters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
  __m512 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_ps(s, acc[c]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f,avx512vl,avx512bf16"))) double bf16_loop_ymm(int seed) {
  __m256 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(float(seed + c));
  const __m256bh a = (__m256bh)_mm256_set1_epi16(0x38d1), b = (__m256bh)_mm256_set1_epi16(short(0x3f80 + seed));
  for (int64_t i = 0; i < kIters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_dpbf16_ps(acc[c], a, b);
  __m256 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm256_add_ps(s, acc[c]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

// Ops: operations per chain step of one instruction (lanes x MACs per lane x 2).
double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

template <double (*Loop)(int), int Ops>
void BM_peak(benchmark::State& st) {
  const int threads = int(st.range(0));
  double sink = 0, cpu_seconds = 0;  // cpu_seconds: summed over threads and iterations
  for (auto _ : st) {
#pragma omp parallel num_threads(threads) reduction(+ : sink, cpu_seconds)
    {
      const double t0 = thread_cpu_seconds();
      sink += Loop(omp_get_thread_num());
      cpu_seconds += thread_cpu_seconds() - t0;
    }
  }
  benchmark::DoNotOptimize(sink);
  const double ops_per_thread = double(kIters) * kChains * Ops;
  st.counters["GOP/s"] =
      benchmark::Counter(ops_per_thread * threads * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["core_GOP/s"] = ops_per_thread * threads * double(st.iterations()) * 1e-9 / cpu_seconds;
}

}  // namespace

BENCHMARK(BM_peak<fma_loop_zmm, 16 * 2>)->Name("fma_f32_zmm")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_peak<fma_loop_ymm, 8 * 2>)->Name("fma_f32_ymm")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_peak<vnni_loop_zmm, 16 * 4 * 2>)->Name("vpdpbusd_int8_zmm")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_peak<vnni_loop_ymm, 8 * 4 * 2>)->Name("vpdpbusd_int8_ymm")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_peak<bf16_loop_zmm, 16 * 2 * 2>)->Name("vdpbf16ps_bf16_zmm")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_peak<bf16_loop_ymm, 8 * 2 * 2>)->Name("vdpbf16ps_bf16_ymm")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_MAIN();
