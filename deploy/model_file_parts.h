// Private to deploy/model_file_*.cpp: the names, dtypes and shapes of a layer's tensors in the model file
// (the layout is documented in deploy/model_file.h).
#pragma once
#include <cstdint>
#include <string>

#include "core/dtype.h"
#include "core/precision.h"
#include "core/tensor.h"
#include "models/model.h"

namespace mpq::deploy::parts {

// W.scale: the f32 scales of an int8 / int4 weight W.
inline std::string scale_name(const std::string& weight) { return weight + ".scale"; }
// B: the bias of the module owning weight W ("fc.weight" -> "fc.bias").
inline std::string bias_name(const std::string& weight) { return weight.substr(0, weight.rfind('.')) + ".bias"; }
// Convs and linears add an f32 bias (a conv's folded batch norm); embedding tables do not.
inline bool has_bias(const models::QuantLayer& l) { return l.kind != models::LayerKind::embedding; }

// The int4 group the codes of a layer with K inputs use: `group` when it divides K (the int4 kernels' and the
// simulation's rule), else 0 (one scale per output channel). Depthwise rows (K = KH * KW) are per channel.
inline int64_t int4_group(const models::QuantLayer& l, int64_t group, int64_t K) {
  if (l.kind == models::LayerKind::depthwise_conv || group <= 0 || K % group != 0) return 0;
  return group;
}

// dtype of W at precision p: F32, F16, BF16, I8 (int8 codes), U8 (int4 codes, two per byte).
inline DType weight_dtype(Precision p) {
  switch (p) {
    case Precision::fp32:
      return DType::f32;
    case Precision::fp16:
      return DType::f16;
    case Precision::bf16:
      return DType::bf16;
    case Precision::int8:
      return DType::i8;
    case Precision::int4:
      return DType::u8;
  }
  return DType::f32;
}

// Shape of W at precision p for a layer whose model weight has shape `model_shape` ([O, ...], K the rest).
inline Shape weight_shape(Precision p, const Shape& model_shape) {
  const int64_t O = model_shape.at(0), K = numel_of(model_shape) / O;
  if (p == Precision::int8) return {O, K};
  if (p == Precision::int4) return {O, (K + 1) / 2};
  return model_shape;
}

}  // namespace mpq::deploy::parts
