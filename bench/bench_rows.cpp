// The transformer row kernels (ops/kernels/transformer.h) at BERT-base shapes (sequence 128, hidden 768, FFN
// 3072), every list entry this CPU can run, called directly on one thread (fn(args, 0, rows): no OpenMP split,
// so the figure is the kernel's, not the scheduler's). The cases are the native int8 BERT's calls
// (models/native/bert_native_run.cpp):
//   layernorm_128x768   x + bias + residual, f32 out and a u8 second output (the next GEMM's input)
//   softmax_128x128     int32 accumulators + row term, scale, additive key mask (every 4th key masked), u8 out
//   gelu_128x768        bias + gelu, u8 out (a narrower row of the same op)
//   gelu_128x3072       bias + gelu, u8 out (the FFN's intermediate)
//   requant_128x768     int32 accumulators + row term, scale, u8 out (no gelu)
//
//   build/bench_rows --benchmark_min_time=0.2 --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//
// Counters: GB/s = bytes read + written per call / time. Names: CASE/IMPLEMENTATION (the list entry's name).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "bench/bench_util.h"
#include "core/cpu_features.h"
#include "ops/kernels/transformer.h"

namespace {

using namespace mpq::kernels;

using mpq::bench::rand_f;

// Operands of every case, allocated once: [rows, cols] inputs and outputs of the largest case.
struct Operands {
  static constexpr int64_t kRows = 128, kMaxCols = 3072;
  std::vector<float> x = rand_f(size_t(kRows * kMaxCols), 1, -4.0f, 4.0f);     // [128, 3072]
  std::vector<float> xi = rand_f(size_t(kRows * kMaxCols), 2, -4e5f, 4e5f);    // [128, 3072] integers
  std::vector<float> res = rand_f(size_t(kRows * kMaxCols), 3, -2.0f, 2.0f);   // [128, 3072]
  std::vector<float> bias = rand_f(size_t(kMaxCols), 4, -1.0f, 1.0f);          // [3072]
  std::vector<float> gamma = rand_f(size_t(kMaxCols), 5, 0.5f, 1.5f);          // [3072]
  std::vector<float> beta = rand_f(size_t(kMaxCols), 6, -0.5f, 0.5f);          // [3072]
  std::vector<float> mask = std::vector<float>(size_t(kMaxCols), 0.0f);        // [3072]
  std::vector<int32_t> corr = std::vector<int32_t>(size_t(kRows), -1234);      // [128]
  std::vector<float> out = std::vector<float>(size_t(kRows * kMaxCols));       // [128, 3072]
  std::vector<uint8_t> out8 = std::vector<uint8_t>(size_t(kRows * kMaxCols));  // [128, 3072]
  Operands() {
    for (auto& v : xi) v = float(int32_t(v));
    for (size_t c = 3; c < mask.size(); c += 4) mask[c] = -10000.0f;
  }
};
Operands& ops() {
  static Operands o;
  return o;
}

template <class Impl, class Args>
void run(benchmark::State& st, const Impl& impl, const Args& a, double bytes) {
  for (auto _ : st) {
    impl.fn(a, 0, a.rows);
    benchmark::ClobberMemory();
  }
  st.counters["GB/s"] = benchmark::Counter(bytes * double(st.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}

// Registers one case per list entry whose ISA this CPU has (the reference included, as the baseline).
template <class List, class MakeArgs>
void register_case(const std::string& name, const List& list, MakeArgs make, double bytes) {
  for (const auto& impl : list.impls()) {
    if (!mpq::isa_detected(impl.isa)) continue;
    mpq::bench::register_us(name + "/" + impl.name,
                            [impl, make, bytes](benchmark::State& st) { run(st, impl, make(), bytes); });
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t L = Operands::kRows;
  register_case(
      "layernorm_128x768", layer_norm_rows_list(),
      [L] {
        Operands& o = ops();
        LayerNormArgs a;
        a.rows = L, a.cols = 768, a.x = o.x.data(), a.ldx = 768, a.bias = o.bias.data();
        a.res = o.res.data(), a.ldr = 768, a.gamma = o.gamma.data(), a.beta = o.beta.data();
        a.out = {mpq::DType::f32, o.out.data(), 768};
        a.out2 = {mpq::DType::u8, o.out8.data(), 768, 0.05f, 128};
        return a;
      },
      double(L * 768 * (4 + 4 + 4 + 1)));
  register_case(
      "softmax_128x128", softmax_rows_list(),
      [L] {
        Operands& o = ops();
        SoftmaxArgs a;
        a.rows = L, a.cols = L, a.x = o.xi.data(), a.ldx = L, a.row_corr = o.corr.data(), a.scale = 1.0f / 40000.0f;
        a.mask = o.mask.data();
        a.out = {mpq::DType::u8, o.out8.data(), L, 1.0f / 255.0f, 0};
        return a;
      },
      double(L * L * (4 + 1)));
  for (int64_t cols : {int64_t(768), int64_t(3072)})
    register_case(
        "gelu_128x" + std::to_string(cols), rows_map_list(),
        [L, cols] {
          Operands& o = ops();
          RowMapArgs a;
          a.rows = L, a.cols = cols, a.x = o.x.data(), a.ldx = cols, a.bias = o.bias.data(), a.gelu = true;
          a.out = {mpq::DType::u8, o.out8.data(), cols, 0.02f, 10};
          return a;
        },
        double(L * cols * (4 + 1)));
  register_case(
      "requant_128x768", rows_map_list(),
      [L] {
        Operands& o = ops();
        RowMapArgs a;
        a.rows = L, a.cols = 768, a.x = o.xi.data(), a.ldx = 768, a.row_corr = o.corr.data(), a.scale = 1e-5f;
        a.out = {mpq::DType::u8, o.out8.data(), 768, 0.03f, 128};
        return a;
      },
      double(L * 768 * (4 + 1)));
  return mpq::bench::run_main(argc, argv);
}
