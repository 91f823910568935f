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
// Counters (bench/bench_util.h): GOP/s (2*M*N*K per call), %peak / %mpeak of the unit that does the work
// against the quoted / measured (bench_peak) 2-core peaks: INT8 VNNI 1650 / 926 GOP/s (int8 and int4),
// FP32 FMA 416 / 231 (f16 weights compute in f32), BF16 800 / 467; wMB = packed weight bytes (what int4 halves).
#include <string>
#include <utility>

#include "bench/bench_util.h"

namespace {

using mpq::bench::GemmShape;

// ResNet50 1x1 convs at batch 1 as GEMM (M = H*W), MobileNetV2 1x1 convs, BERT-base linears at seq 128
// ({name, M, N, K}; bench_model_shapes has every layer shape of the three models).
const GemmShape kShapes[] = {
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
    // Weight-bandwidth-bound cases (one or a few tokens), where int4's halved weight bytes can pay off
    // (bench_membound measures them with weights out of cache).
    {"bert_ffn_up_m1", 1, 3072, 768},
    {"bert_ffn_up_m8", 8, 3072, 768},
    // A GEMV whose int8 weights (64 MiB) exceed the 32 MiB L3: DRAM-bound, int4 halves the traffic.
    {"gemv_dram", 1, 16384, 4096},
};

}  // namespace

int main(int argc, char** argv) {
  const std::pair<const char*, const char*> runs[] = {
      {"q8", "gemm_qu8_qc8w_14x32c4__avx512vnni"},     {"q8", "gemm_qu8_qc8w__onednn"},
      {"q8s", "gemm_qu8_qc8w_14x32c4__avx512vnni"},    {"q4", "gemm_qu8_qc4w_12x32c4__avx512vnni"},
      {"q4g128", "gemm_qu8_qc4w_12x32c4__avx512vnni"}, {"f16", "gemm_f16_14x32__avx512"},
      {"bf16", "gemm_bf16_14x32c2__avx512bf16"},       {"bf16", "gemm_bf16__onednn"},
  };
  for (const GemmShape& s : kShapes)
    for (const auto& [kind, impl] : runs) {
      const std::string name = s.name + "/" + kind + "/" + impl;
      mpq::bench::register_us(name, mpq::bench::run_gemm_case, s, std::string(kind), std::string(impl), size_t(1));
    }
  return mpq::bench::run_main(argc, argv);
}
