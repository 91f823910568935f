// The integer codes and scales a native layer packs: the rounded weights of the assignment when it carries
// them (LayerQuant::weights: second-order rounding, or a model file), else round-to-nearest of the float
// weights by the shared quantizer (ops/kernels/quantize_weights.h). Both engines and the embedding tables
// call this one function, so every packed integer weight is the simulation's value.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/precision.h"

namespace mpq::native {

struct WeightCodes {
  std::vector<int8_t> q;               // [O, K] in the weight's PyTorch order
  std::vector<float> scales;           // [O][K / G]
  int64_t group = 0;                   // G, or 0 when one scale per row (G = K)
  std::vector<float> bias_correction;  // [O] to add to the layer's bias, or empty
};

// w: f32 [O, K] (PyTorch order; may be null when lq.weights is set). bits: 8 or 4. group: the requested
// int4 group (0 or one that divides K; callers apply the per-channel fallback first). The result's group is
// the record's when rounded weights are given (one group per row: 0, unless `group` == K asked for it). Errors
// name the layer: rounded weights whose shape, bit width or group disagree with the layer.
WeightCodes weight_codes(const std::string& layer, const float* w, int64_t O, int64_t K, int bits, int64_t group,
                         const LayerQuant& lq);

}  // namespace mpq::native
