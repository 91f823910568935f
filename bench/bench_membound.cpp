// What int4 buys on this CPU where it cannot buy compute: GEMMs with 1..8 rows (a token or a few at a time)
// are bound by reading the weights, so halving the weight bytes (int4 vs int8) or quartering them (vs f16)
// can only pay off through memory bandwidth. Every case runs with the weights out of cache: `copies`
// packed copies totalling >= 128 MiB (4x the 32 MiB L3) are cycled call by call, so each call streams its
// weights from DRAM. M=1 is also run with one copy ("hot": the weights stay in L2/L3 when they fit).
//
//   build/bench_membound --benchmark_min_time=0.2 --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//
// Counters: wGB/s = packed weight bytes of one call / time (the traffic that int4 halves), wbytes = that
// size, GOP/s = 2*M*N*K / time, cpuGOP/s = the same over process CPU time (bench_util.h; wGB/s x cpuGOP/s /
// GOP/s is the weight bandwidth over CPU time); read_bw = the DRAM read roof: a vectorised sum over 512 MiB
// on 1 and 2 threads, GB/s over wall time and cpuGB/s over process CPU time (the roof on a loaded machine). Precisions
// and implementations: bench/bench_util.h (ours everywhere; int8 and f32 also through oneDNN, because our f32 GEMM
// packs W on every call, which dominates at M <= 8).
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_util.h"

namespace {

using mpq::bench::GemmShape;

constexpr size_t kColdBytes = size_t(128) << 20;  // weight bytes cycled per case (4x L3)

// {name, M (replaced per run), N, K}
const GemmShape kLayers[] = {
    {"bert_ffn_up", 1, 3072, 768},       // 2.4 MB int8: fits L3 when hot
    {"bert_ffn_down", 1, 768, 3072},     // same bytes, long K
    {"rn50_fc", 1, 1000, 2048},          // classifier
    {"llm_4096x4096", 1, 4096, 4096},    // 16 MiB int8, a 7B-class projection
    {"llm_4096x16384", 1, 16384, 4096},  // 64 MiB int8: beyond L3 even hot
};

const std::pair<const char*, const char*> kRuns[] = {
    {"q8", "gemm_qu8_qc8w_14x32c4__avx512vnni"},
    {"q8", "gemm_qu8_qc8w__onednn"},
    {"q4", "gemm_qu8_qc4w_12x32c4__avx512vnni"},
    {"q4", "gemm_qu8_qc4w_14x32c4_panel__avx512vnni"},
    {"q4g128", "gemm_qu8_qc4w_12x32c4__avx512vnni"},
    {"f16", "gemm_f16_14x32__avx512"},
    {"bf16", "gemm_bf16_14x32c2__avx512bf16"},
    {"f32", "gemm_f32_14x32__avx512"},
    {"f32", "gemm_f32__onednn"},
};

double bytes_per_weight(const std::string& prec) {
  if (prec == "q8") return 1.0;
  if (prec == "q4" || prec == "q4g128") return 0.5;
  if (prec == "f32") return 4.0;
  return 2.0;
}

void bm_gemm(benchmark::State& st, GemmShape s, std::string prec, std::string impl, size_t copies) {
  mpq::bench::run_gemm_case(st, s, prec, impl, copies);
  if (st.error_occurred()) return;
  const auto& bytes = st.counters["wbytes"];
  st.counters["wGB/s"] = benchmark::Counter(bytes.value * double(st.iterations()) * 1e-9, benchmark::Counter::kIsRate);
  st.counters["copies"] = double(copies);
}

// DRAM read roof: each thread sums its share of a 512 MiB buffer (16x L3) with 4 independent zmm adds.
__attribute__((target("avx512f"))) float sum_range(const float* p, size_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

void bm_read_bw(benchmark::State& st) {
  const int threads = int(st.range(0));
  constexpr size_t kFloats = size_t(128) << 20;  // 512 MiB
  static mpq::kernels::AlignedBytes buf;
  if (buf.bytes == 0) buf.alloc(kFloats * sizeof(float));  // zero-filled: pages are touched once here
  const float* p = reinterpret_cast<const float*>(buf.data());
  float sink = 0;
  const double cpu0 = mpq::bench::process_cpu_seconds();
  for (auto _ : st) {
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
      const size_t per = kFloats / size_t(omp_get_num_threads());
      sink += sum_range(p + per * size_t(omp_get_thread_num()), per);
    }
  }
  const double cpu = mpq::bench::process_cpu_seconds() - cpu0;
  benchmark::DoNotOptimize(sink);
  const double gb = double(kFloats * sizeof(float)) * double(st.iterations()) * 1e-9;
  st.counters["GB/s"] = benchmark::Counter(gb, benchmark::Counter::kIsRate);
  st.counters["cpuGB/s"] = cpu > 0 ? gb * threads / cpu : 0.0;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::RegisterBenchmark("read_bw", bm_read_bw)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
  for (const GemmShape& layer : kLayers)
    for (const int64_t M : {1, 4, 8})
      for (const bool hot : {true, false}) {
        if (hot && M != 1) continue;
        for (const auto& [prec, impl] : kRuns) {
          if (std::string(prec) == "q4g128" && layer.K % 128 != 0) continue;
          GemmShape s = layer;
          s.M = M;
          const double bytes = double(s.N) * double(s.K) * bytes_per_weight(prec);
          const size_t copies = hot ? 1 : std::max<size_t>(1, size_t((double(kColdBytes) + bytes - 1) / bytes));
          const std::string name = s.name + "/M" + std::to_string(M) + (hot ? "/hot/" : "/cold/") + prec + "/" + impl;
          mpq::bench::register_us(name, bm_gemm, s, std::string(prec), std::string(impl), copies);
        }
      }
  return mpq::bench::run_main(argc, argv);
}
