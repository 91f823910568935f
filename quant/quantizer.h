// Weight quantizers (symmetric, per output channel or per group along the input) and their fake-quant
// (quantize then dequantize) forms, used for the sensitivity analysis and the simulated evaluation.
//
// Rounding: q = clamp(nearbyint(w / s), -qmax, qmax) with the default FE_TONEAREST mode, i.e. round half to
// even; qmax = 2^(bits-1) - 1 (127 for int8, 7 for int4): the range is symmetric, -2^(bits-1) is unused so
// that negation is exact. Scale s = max|w| / qmax over the channel (or group); an all-zero channel gets s = 1.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace mpq::quant {

struct WeightQuantSpec {
  int bits = 8;       // 8 or 4
  int64_t group = 0;  // 0: one scale per output channel; else a scale per `group` input elements
};

// w: [O, ...] f32 (conv OIHW or linear [out, in]); the "input" axis is the flattened rest.
// Returns the dequantized weights, same shape, f32.
Tensor fake_quant_weight(const Tensor& w, const WeightQuantSpec& spec);

// Rounds every element to the nearest f16 (ties to even) and back: the fp16 precision's weight error.
Tensor fake_quant_f16(const Tensor& w);

// ||Q(w) - w||^2 in double.
double quant_error_sq(const Tensor& w, const Tensor& q);

}  // namespace mpq::quant
