// The fake-quant LayerHook: simulates a per-layer precision assignment in the fp32 forward.
//
//   fp32 : identity (weights and inputs untouched);
//   fp16 : weights and inputs rounded to the nearest IEEE half (ties to even) and back to f32;
//   bf16 : weights and inputs rounded to the nearest bfloat16 (ties to even, core/dtype.h) and back to f32;
//   int8 : W8A8 -- weights symmetric per output channel int8 (quant/quantizer.h: q = clamp(nearbyint(w/s),
//          -127, 127), s = max|w| / 127), inputs asymmetric uint8 per tensor with the calibrated scale and
//          zero point (quant/observers.h: round half to even, clamp to [0, 255]);
//   int8 / int4 with LayerQuant::weights set: those rounded weights (q * s, core/quantized_weight.h) and
//          their bias correction (on_bias), instead of rounding the float weights here;
//   int4 : W4A8 -- weights symmetric int4 (qmax 7) per output channel (weight_group 0) or per group of
//          `weight_group` consecutive elements of the flattened [O, I/g * KH * KW] weight row (for a linear
//          layer: `weight_group` input channels); a layer whose row length is not a multiple of the group
//          (e.g. a 3x3 depthwise row of 9) falls back to per output channel. Inputs uint8 as for int8.
// Layers absent from the assignment stay fp32. No straight-through gradient yet: use under NoGrad.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/precision.h"
#include "models/model.h"
#include "quant/observers.h"

namespace mpq::quant {

class FakeQuantHook : public models::LayerHook {
 public:
  explicit FakeQuantHook(Assignment a) : a_(std::move(a)) {}
  Tensor on_weight(const std::string& layer, const Tensor& w) override;
  Tensor on_input(const std::string& layer, int operand, const Tensor& x) override;
  // adds LayerQuant::weights' bias correction of an int8 / int4 layer
  Tensor on_bias(const std::string& layer, const Tensor& b) override;
  const Assignment& assignment() const { return a_; }

 private:
  Assignment a_;
};

// Rounds every element to the nearest IEEE half (ties to even) and back to f32 (F16C, vectorised); the same
// values as quantizer.h's fake_quant_f16, fast enough for activations.
Tensor round_to_f16(const Tensor& x);

// Rounds every element to the nearest bfloat16 (ties to even, core/dtype.h f32_to_bf16) and back to f32.
Tensor round_to_bf16(const Tensor& x);

// Builds an assignment: layer i gets precisions[i] with its calibrated activation params (int8 / int4 layers
// with activation operands -- every kind but embedding tables -- need an entry in `calib` for each operand;
// error otherwise, naming the layer). With `rounded`, each int8 / int4 layer that has a record there takes it
// (LayerQuant::weights; an int4 record's group replaces int4_group); the others round to nearest.
Assignment make_assignment(const std::vector<models::QuantLayer>& layers, const std::vector<Precision>& precisions,
                           const Calibration& calib, int64_t int4_group = 0, const RoundedWeights* rounded = nullptr);

// Every layer of `m` at precision p with the given calibration (needed for int8 / int4).
Assignment uniform_assignment(const models::Model& m, Precision p, const Calibration& calib, int64_t int4_group = 0,
                              const RoundedWeights* rounded = nullptr);

// Sets a FakeQuantHook on the model for the scope of this object and restores the previous hook after.
class ScopedHook {
 public:
  ScopedHook(models::Model& m, std::shared_ptr<models::LayerHook> h) : m_(m), prev_(m.layer_hook()) {
    m_.set_layer_hook(std::move(h));
  }
  ~ScopedHook() { m_.set_layer_hook(prev_); }
  ScopedHook(const ScopedHook&) = delete;
  ScopedHook& operator=(const ScopedHook&) = delete;

 private:
  models::Model& m_;
  std::shared_ptr<models::LayerHook> prev_;
};

}  // namespace mpq::quant
