// Every GEMM shape of the three models at batch 1, per precision, ours next to oneDNN in the same run
// (registration is shape-major, so each shape's implementations run back to back).
//
//   build/bench_model_shapes --benchmark_min_time=0.1 --benchmark_repetitions=3 \
//       --benchmark_report_aggregates_only=true [--benchmark_filter=/q8/] [--benchmark_format=json]
//   scripts/bench_model_totals.py OUT.json      per-model sums (count x median time) from the JSON output
//
// Shapes: torchvision ResNet50 at 224x224 (stride on the 3x3 conv, models/resnet50.cpp) with every conv as
// its im2col GEMM (M = OH*OW, K = KH*KW*Cin, N = Cout), MobileNetV2's 1x1 convs (models/mobilenetv2.cpp;
// its 3x3 convs are depthwise, not GEMMs), BERT-base linears at sequence 128, and both classifiers.
// Every case: f32 output + bias epilogue, 2 threads, real time (bench/bench_util.h). Counters: GOP/s,
// %peak / %mpeak against the quoted / measured 2-core peak of the unit used, wMB, n = occurrences of the
// shape in the model. The 3x3 / 7x7 convs are timed as the GEMM they become after im2col (im2col itself
// not included), so they bound what a GEMM-based conv can reach; the fp32 rows call our GEMM driver,
// which packs W per call as the runtime's matmul does today (the lowp kernels read pre-packed W).
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_util.h"

namespace {

using mpq::bench::GemmShape;

// {name, M, N, K, count}
const GemmShape kShapes[] = {
    // BERT-base, seq 128: 12 layers x (Q, K, V, attention output; FFN up; FFN down).
    {"bert_qkvo", 128, 768, 768, 48},
    {"bert_ffn_up", 128, 3072, 768, 12},
    {"bert_ffn_down", 128, 768, 3072, 12},
    // ResNet50: stem 7x7/2 (K = 7*7*3), stages s1..s4 (56, 28, 14, 7), c1/c2/c3 = 1x1, 3x3, 1x1; b0 = first
    // block of a stage (different input width), ds = projection shortcut.
    {"rn50_stem_7x7", 12544, 64, 147, 1},
    {"rn50_s1_b0_c1", 3136, 64, 64, 1},
    {"rn50_s1_c1", 3136, 64, 256, 2},
    {"rn50_s1_c2_3x3", 3136, 64, 576, 3},
    {"rn50_s1_c3_ds", 3136, 256, 64, 4},
    {"rn50_s2_b0_c1", 3136, 128, 256, 1},
    {"rn50_s2_c2_3x3", 784, 128, 1152, 4},
    {"rn50_s2_c1", 784, 128, 512, 3},
    {"rn50_s2_c3", 784, 512, 128, 4},
    {"rn50_s2_ds", 784, 512, 256, 1},
    {"rn50_s3_b0_c1", 784, 256, 512, 1},
    {"rn50_s3_c2_3x3", 196, 256, 2304, 6},
    {"rn50_s3_c1", 196, 256, 1024, 5},
    {"rn50_s3_c3", 196, 1024, 256, 6},
    {"rn50_s3_ds", 196, 1024, 512, 1},
    {"rn50_s4_b0_c1", 196, 512, 1024, 1},
    {"rn50_s4_c2_3x3", 49, 512, 4608, 3},
    {"rn50_s4_c1", 49, 512, 2048, 2},
    {"rn50_s4_c3", 49, 2048, 512, 3},
    {"rn50_s4_ds", 49, 2048, 1024, 1},
    {"rn50_fc", 1, 1000, 2048, 1},
    // MobileNetV2 1x1 convs: f<i> = features.<i>; exp = expansion (Cin -> 6 Cin), proj = projection.
    {"mnv2_f1_proj", 12544, 16, 32, 1},
    {"mnv2_f2_exp", 12544, 96, 16, 1},
    {"mnv2_f2_proj", 3136, 24, 96, 1},
    {"mnv2_f3_f4_exp", 3136, 144, 24, 2},
    {"mnv2_f3_proj", 3136, 24, 144, 1},
    {"mnv2_f4_proj", 784, 32, 144, 1},
    {"mnv2_f5_f7_exp", 784, 192, 32, 3},
    {"mnv2_f5_f6_proj", 784, 32, 192, 2},
    {"mnv2_f7_proj", 196, 64, 192, 1},
    {"mnv2_f8_f11_exp", 196, 384, 64, 4},
    {"mnv2_f8_f10_proj", 196, 64, 384, 3},
    {"mnv2_f11_proj", 196, 96, 384, 1},
    {"mnv2_f12_f14_exp", 196, 576, 96, 3},
    {"mnv2_f12_f13_proj", 196, 96, 576, 2},
    {"mnv2_f14_proj", 49, 160, 576, 1},
    {"mnv2_f15_f17_exp", 49, 960, 160, 3},
    {"mnv2_f15_f16_proj", 49, 160, 960, 2},
    {"mnv2_f17_proj", 49, 320, 960, 1},
    {"mnv2_f18_1x1", 49, 1280, 320, 1},
    {"mnv2_fc", 1, 1000, 1280, 1},
};

// {precision, implementation}: ours, then oneDNN where it has the precision (oneDNN 2.6: no int4, no f16).
const std::pair<const char*, const char*> kRuns[] = {
    {"q8", "gemm_qu8_qc8w_14x32c4__avx512vnni"},
    {"q8", "gemm_qu8_qc8w__onednn"},
    {"q4", "gemm_qu8_qc4w_12x32c4__avx512vnni"},
    {"q4", "gemm_qu8_qc4w_14x32c4_panel__avx512vnni"},
    {"q4g128", "gemm_qu8_qc4w_12x32c4__avx512vnni"},
    {"q4g128", "gemm_qu8_qc4w_14x32c4_panel__avx512vnni"},
    {"f16", "gemm_f16_14x32__avx512"},
    {"bf16", "gemm_bf16_14x32c2__avx512bf16"},
    {"bf16", "gemm_bf16__onednn"},
    {"f32", "gemm_f32_14x32__avx512"},
    {"f32", "gemm_f32__onednn"},
};

void bm(benchmark::State& st, GemmShape s, std::string prec, std::string impl) {
  mpq::bench::run_gemm_case(st, s, prec, impl);
  st.counters["n"] = s.count;
}

}  // namespace

int main(int argc, char** argv) {
  for (const GemmShape& s : kShapes)
    for (const auto& [prec, impl] : kRuns) {
      if (std::string(prec) == "q4g128" && s.K % 128 != 0) continue;  // groups of 128 need K % 128 == 0
      const std::string name = s.name + "/" + prec + "/" + impl;
      mpq::bench::register_us(name, bm, s, std::string(prec), std::string(impl));
    }
  return mpq::bench::run_main(argc, argv);
}
