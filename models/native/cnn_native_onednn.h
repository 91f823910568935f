// Private to models/native: the oneDNN 2.6 convolution alternative of a compiled CNN layer.
#pragma once
#include <memory>
#include <string>

#include "models/native/cnn_native.h"

namespace mpq::native::cnn {

// One oneDNN convolution primitive for layer L at geometry g and batch io.N, NHWC source / destination as the
// plan holds them, weights reordered ONCE here into the primitive's layout (from L's packed weights, so the
// values are the ones our kernels use):
//   fp32: f32 src / weights / bias -> f32 dst;
//   bf16: bf16 src (the f32 input rounded RNE into io.dnn_in, counted in the layer) and weights -> f32 dst;
//   int8: u8 src with its zero point, s8 weights with per-output-channel output scales sa * s[o] (/ out_scale
//         for a u8 dst, plus the dst zero point), bias passed in the accumulator domain (oneDNN 2.x computes
//         oscale * (acc + bias)) -> u8 or f32 dst;
//   int4 (per channel): the same int8 primitive on the int4 codes. Depthwise and small layers hold them as
//         s8 already (dw_q8, widened w.q8); a larger layer keeps the primitive's weight buffer in 4 bits (split
//         nibbles) and widens it into io.dnn_w on every call, which costs one pass over its weights.
// Post-ops: the residual as a binary add of the f32 [N, C, OH, OW] residual, then the ReLU / ReLU6 clip (in
// the scaled domain for a u8 dst). Rounding: oneDNN scales and adds the bias in another order than our
// epilogue (fma(acc, scale, bias)), so an f32 result may differ in the last bit and a u8 result by one step
// where the value sits at a rounding tie.
class OnednnConv {
 public:
  // Null when oneDNN does not offer this layer / format combination (int4 with group scales, f16 tensors, a
  // u8 residual, an output other than f32 / u8 for int8, other than f32 for fp32 / bf16), or only through its
  // reference code.
  static std::shared_ptr<OnednnConv> make(const Layer& L, const Geom& g, const LayerIO& io);
  virtual ~OnednnConv() = default;
  virtual void run(const LayerIO& io) const = 0;
  const std::string& name() const { return name_; }

 protected:
  std::string name_;
};

}  // namespace mpq::native::cnn
