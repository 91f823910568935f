// The registration and main() every benchmark executable here shares: wall-clock timing (the kernels run
// on two OpenMP threads, so CPU time would double-count) reported in microseconds.
#pragma once
#include <benchmark/benchmark.h>

#include <string>
#include <utility>

namespace mpq::bench {

// Registers fn(state, args...) under `name`, timed in real time, reported in microseconds.
template <class Fn, class... Args>
benchmark::internal::Benchmark* register_us(const std::string& name, Fn&& fn, Args&&... args) {
  return benchmark::RegisterBenchmark(name.c_str(), std::forward<Fn>(fn), std::forward<Args>(args)...)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

// Google Benchmark's main: parses --benchmark_* flags, rejects unknown ones, runs what was registered.
inline int run_main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace mpq::bench
