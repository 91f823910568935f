// The packed weights (B operand) of one GEMM layer at its precision, shared by both native engines: a CNN
// conv / linear (models/native/cnn_native.h) and a BERT linear (bert_native.h). One packing from float rows
// or from integer codes (weight_codes.h), one widening rule for small int4 layers, one stored-bytes count.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/precision.h"
#include "ops/kernels/act_format.h"
#include "ops/kernels/lowp.h"

namespace mpq::native {

// A per-channel int4 GEMM layer with at most this many weights also keeps its codes widened to int8 (q8:
// the same integers and scales, so the same accumulators and, with our kernels, the same outputs bit for bit)
// and runs the int8 kernels: ours, or with autotuning oneDNN's too. Such layers are the small, compute-bound
// ones (MobileNetV2's early 1x1 convs, ResNet50's first stage), where the int4 kernel's nibble unpacking cost
// up to 1.5x the int8 time and 4 bits save almost no memory traffic. The widened copy is run-time memory only
// (64 Ki codes per layer at most, plus padding); the stored model and bytes() hold the int4 codes.
inline constexpr int64_t kWidenedInt4MaxWeights = int64_t(64) << 10;

struct PackedGemm {
  Precision prec = Precision::fp32;
  int64_t N = 0, K = 0;       // outputs (rows of W), reduction length
  std::vector<float> f32;     // fp32: B operand [K, N] row-major (gemm_f32's plain "nn" B)
  kernels::PackedF16W f16;    // fp16
  kernels::PackedBF16W bf16;  // bf16
  kernels::PackedQ8W q8;      // int8; also a small per-channel int4 layer's codes widened (kWidenedInt4MaxWeights)
  kernels::PackedQ4W q4;      // int4, per channel or per group of 32 / 64 / 128
  bool widened() const { return prec == Precision::int4 && q8.N > 0; }
  // Packed weights + scales + column sums at the layer's precision, as stored (not the widened copy).
  size_t bytes() const;
};

// fp32 / fp16 / bf16 from float rows W [N, K] in the kernel's column order.
PackedGemm pack_gemm_float(Precision p, const float* rows, int64_t N, int64_t K);
// int8 / int4 from codes [N, K] in the kernel's column order and scales [N][K / group] (group 0: [N]; int8
// takes group 0 only). widen: a per-channel int4 layer with N * K <= kWidenedInt4MaxWeights also packs q8.
PackedGemm pack_gemm_codes(Precision p, const int8_t* codes, int64_t N, int64_t K, int64_t group, const float* scales,
                           bool widen);

// The int8 kernel a widened int4 layer runs without autotuning (eval, the search's native probes): the first
// usable entry of gemm_qu8_qc8w_list() that is ours. Ours give the int4 kernels' results bit for bit, so the
// layer computes exactly what it would on the int4 kernels; oneDNN's matmul, which the dispatcher prefers at
// K <= 64, rounds its epilogue differently (an autotuning candidate only).
const kernels::Q8GemmList::Impl& widened_int4_kernel(const kernels::Q8GemmArgs& a);

// ---- what both engines' layers share besides the weights; errors name the engine ("cnn", "bert") and layer ----

// The format an int8 / int4 layer reads: u8 with its calibrated input scale / zero point (lq.act[0]).
kernels::ActFormat integer_input(const char* engine, const std::string& layer, const LayerQuant& lq);
// The int4 group the kernels run for rows of K: the fake-quant hook's rule (a group that does not divide the
// row falls back to per output channel, 0), else 32, 64 or 128; any other group is an error.
int64_t effective_int4_group(const char* engine, const std::string& layer, int64_t group, int64_t K);
// bias [N] += a rounding's bias correction bc ([N] or empty).
void add_bias_correction(const char* engine, const std::string& layer, std::vector<float>& bias,
                         const std::vector<float>& bc);

}  // namespace mpq::native
