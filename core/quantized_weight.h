// Integer weights decided before compilation -- by second-order rounding (quant/gptq.h) or read back from a
// deployed model file -- that every consumer takes as they are: the fake-quant simulation dequantizes them,
// the native engines pack the codes and scales without rounding again. So the simulated weights and the
// packed ones are the same numbers by construction.
//
//   q [rows, cols] int8 codes with |q| <= qmax = 2^(bits-1) - 1, in the layer's PyTorch weight order
//     (linear [out, in]; conv [O, C/groups, KH, KW] flattened as k = (c * KH + kh) * KW + kw; embedding rows)
//   scale [rows][cols / group] f32 (group = cols: one scale per output channel)
//   weight = q * scale, one f32 multiply per element (what the packed integer kernels compute)
//   bias_correction [rows] f32 added to the layer's bias (empty: none)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mpq {

struct QuantizedWeight {
  int64_t rows = 0, cols = 0;  // O, K
  int64_t group = 0;           // G: cols / G scales per row (G = cols: per output channel)
  int bits = 4;
  std::vector<int8_t> q;               // [rows, cols]
  std::vector<float> scale;            // [rows][cols / group]
  std::vector<float> bias_correction;  // [rows] or empty
  int qmax() const { return (1 << (bits - 1)) - 1; }
  float at(int64_t r, int64_t k) const {
    return float(q[size_t(r * cols + k)]) * scale[size_t(r * (cols / group) + k / group)];
  }
  void dequantize_into(float* w) const;         // w [rows, cols]
  Tensor dequantize(const Shape& shape) const;  // reshaped to `shape` (numel rows * cols)
  // Sizes, code range and finite positive scales; errors name `layer` and the field.
  void validate(const std::string& layer) const;
};

}  // namespace mpq
