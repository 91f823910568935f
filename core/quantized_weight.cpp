#include "core/quantized_weight.h"

#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace mpq {

void QuantizedWeight::dequantize_into(float* w) const {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k) w[r * cols + k] = at(r, k);
}

Tensor QuantizedWeight::dequantize(const Shape& shape) const {
  Tensor t = Tensor::empty(shape);  // `shape`, numel rows * cols, f32
  check(t.numel() == rows * cols, "dequantize: shape {} does not hold the {} x {} weight", shape_str(shape), rows,
        cols);
  dequantize_into(t.data<float>());
  return t;
}

void QuantizedWeight::validate(const std::string& layer) const {
  check(bits >= 2 && bits <= 8, "layer '{}': rounded weights of {} bits (2..8)", layer, bits);
  check(rows > 0 && cols > 0 && group > 0 && cols % group == 0,
        "layer '{}': rounded weights {} x {} with group {} (the group must divide the row)", layer, rows, cols, group);
  check(q.size() == size_t(rows * cols), "layer '{}': {} codes for {} x {} weights", layer, q.size(), rows, cols);
  check(scale.size() == size_t(rows * (cols / group)), "layer '{}': {} scales, expected {}", layer, scale.size(),
        rows * (cols / group));
  check(bias_correction.empty() || bias_correction.size() == size_t(rows),
        "layer '{}': {} bias corrections for {} rows", layer, bias_correction.size(), rows);
  for (int8_t c : q) check(std::abs(int(c)) <= qmax(), "layer '{}': code {} outside +-{}", layer, int(c), qmax());
  for (float s : scale) check(std::isfinite(s) && s > 0, "layer '{}': scale {} is not a positive number", layer, s);
  for (float b : bias_correction) check(std::isfinite(b), "layer '{}': bias correction {} is not finite", layer, b);
}

}  // namespace mpq
