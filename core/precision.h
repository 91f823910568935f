// The vocabulary every layer shares: a layer's precision and its quantization parameters, and an
// assignment of those to the layers of a model. The native engines compile an Assignment, the quantization
// tool produces one, the config file stores one; so the types sit here, below all of them.
//
//   fp32 : reference, weights and inputs untouched;
//   fp16 : weights and inputs stored as IEEE binary16 (round to nearest even), f32 arithmetic;
//   bf16 : weights and inputs stored as bfloat16 (round to nearest even), f32 accumulation;
//   int8 : W8A8 -- symmetric int8 weights per output channel, uint8 inputs with a calibrated per-tensor
//          scale and zero point, int32 accumulation;
//   int4 : W4A8 -- symmetric int4 weights per output channel or per group of 32 / 64 / 128 consecutive
//          input elements, packed two per byte, uint8 inputs as for int8.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/enum_table.h"
#include "core/quantized_weight.h"

namespace mpq {

enum class Precision { fp32, fp16, bf16, int8, int4 };
inline constexpr std::array<EnumName<Precision>, 5> kPrecisionNames{{{Precision::fp32, "fp32"},
                                                                     {Precision::fp16, "fp16"},
                                                                     {Precision::bf16, "bf16"},
                                                                     {Precision::int8, "int8"},
                                                                     {Precision::int4, "int4"}}};
inline const char* precision_name(Precision p) { return enum_name(kPrecisionNames, p); }
// "fp32" | "fp16" | "bf16" | "int8" | "int4"; anything else throws naming it
inline Precision parse_precision(const std::string& s) { return parse_enum(kPrecisionNames, s, "precision"); }
// 32, 16, 16, 8, 4
constexpr int precision_weight_bits(Precision p) {
  return p == Precision::fp32 ? 32 : p == Precision::int8 ? 8 : p == Precision::int4 ? 4 : 16;
}
// int8 / int4: the layer quantizes its inputs too (W8A8 / W4A8; needs activation scale and zero point)
constexpr bool precision_is_integer(Precision p) { return p == Precision::int8 || p == Precision::int4; }

// Asymmetric uint8 quantization of one activation operand: q = clamp(nearbyint(x / scale) + zero_point, 0, 255).
struct ActQuantParams {
  float scale = 1.0f;      // s > 0
  int32_t zero_point = 0;  // zp in [0, 255]
  float lo = 0, hi = 0;    // the (0-widened) range the parameters came from
};

struct LayerQuant {
  Precision precision = Precision::fp32;
  int64_t weight_group = 0;           // int4 only: 0 = per output channel, else 32 / 64 / 128
  std::map<int, ActQuantParams> act;  // operand -> uint8 params (needed for int8 / int4)
  // int8 / int4: the rounded weights to use as they are (core/quantized_weight.h); null: round-to-nearest of
  // the float weights at compile time (ops/kernels/quantize_weights.h)
  std::shared_ptr<const QuantizedWeight> weights;
};

using Assignment = std::map<std::string, LayerQuant>;  // layer name -> precision + parameters

// Rounded weights of every weight layer at each integer bit width (quant/rounding.h computes them from
// calibration data): an assignment built with them gives each int8 / int4 layer its record. Empty maps:
// round-to-nearest everywhere.
struct RoundedWeights {
  std::map<std::string, std::shared_ptr<const QuantizedWeight>> int8, int4;  // layer -> record
  bool empty() const { return int8.empty() && int4.empty(); }
  // the record for layer `name` at precision p, or null (not integer, or no record)
  std::shared_ptr<const QuantizedWeight> find(const std::string& name, Precision p) const {
    const auto& m = p == Precision::int8 ? int8 : int4;
    if (!precision_is_integer(p)) return nullptr;
    auto it = m.find(name);
    return it == m.end() ? nullptr : it->second;
  }
};

}  // namespace mpq
