#include "quant/fake_quant.h"

#include <algorithm>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "ops/kernels/nhwc.h"
#include "quant/quantizer.h"

namespace mpq::quant {

Tensor round_to_f16(const Tensor& x) {
  check(x.dtype() == DType::f32, "round_to_f16: f32 expected, got {}", dtype_name(x.dtype()));
  const Tensor c = x.contiguous();
  Tensor out = Tensor::empty(x.shape());  // same shape as x, f32
  const int64_t n = x.numel();
  // Through the dispatched conversion kernels (round to nearest even; |x| > 65504 becomes +-inf as in IEEE),
  // the same ones the native engine stores f16 activations with.
  std::vector<uint16_t> h(static_cast<size_t>(n));  // [n] binary16
  kernels::convert_f32_f16(c.data<float>(), n, h.data());
  kernels::convert_f16_f32(h.data(), n, out.data<float>());
  return out;
}

Tensor round_to_bf16(const Tensor& x) {
  check(x.dtype() == DType::f32, "round_to_bf16: f32 expected, got {}", dtype_name(x.dtype()));
  const Tensor c = x.contiguous();
  Tensor out = Tensor::empty(x.shape());  // same shape as x, f32
  const float* src = c.data<float>();
  float* dst = out.data<float>();
  const int64_t n = x.numel();
#pragma omp parallel for if (n > (1 << 16)) schedule(static)
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(f32_to_bf16(src[i]));
  return out;
}

Tensor FakeQuantHook::on_weight(const std::string& layer, const Tensor& w) {
  auto it = a_.find(layer);
  if (it == a_.end()) return w;
  const LayerQuant& q = it->second;
  switch (q.precision) {
    case Precision::fp32:
      return w;
    case Precision::fp16:
      return round_to_f16(w);
    case Precision::bf16:
      return round_to_bf16(w);
    case Precision::int8:
    case Precision::int4:
      if (q.weights) {
        check(q.weights->bits == (q.precision == Precision::int8 ? 8 : 4) &&
                  q.weights->rows * q.weights->cols == w.numel() && q.weights->rows == w.size(0),
              "fake quant: layer '{}' has rounded {}-bit weights of {} x {} for its {} weight {}", layer,
              q.weights->bits, q.weights->rows, q.weights->cols, precision_name(q.precision), shape_str(w.shape()));
        return q.weights->dequantize(w.shape());
      }
      if (q.precision == Precision::int8) return fake_quant_weight(w, {8, 0});
      {
        const int64_t row = w.numel() / w.size(0);  // flattened input elements per output channel
        return fake_quant_weight(w, {4, row % std::max<int64_t>(q.weight_group, 1) == 0 ? q.weight_group : 0});
      }
  }
  return w;
}

Tensor FakeQuantHook::on_bias(const std::string& layer, const Tensor& b) {
  auto it = a_.find(layer);
  if (it == a_.end() || !precision_is_integer(it->second.precision) || !it->second.weights ||
      it->second.weights->bias_correction.empty())
    return b;
  const std::vector<float>& bc = it->second.weights->bias_correction;  // [O]
  Tensor out = b.defined() ? b.contiguous().clone() : Tensor::zeros({int64_t(bc.size())});
  check(out.numel() == int64_t(bc.size()), "fake quant: layer '{}' has {} bias corrections for a bias of {}", layer,
        bc.size(), out.numel());
  float* p = out.data<float>();
  for (size_t i = 0; i < bc.size(); ++i) p[i] = p[i] + bc[i];
  return out;
}

Tensor FakeQuantHook::on_input(const std::string& layer, int operand, const Tensor& x) {
  auto it = a_.find(layer);
  if (it == a_.end()) return x;
  const LayerQuant& q = it->second;
  switch (q.precision) {
    case Precision::fp32:
      return x;
    case Precision::fp16:
      return round_to_f16(x);
    case Precision::bf16:
      return round_to_bf16(x);
    case Precision::int8:
    case Precision::int4: {
      auto a = q.act.find(operand);
      check(a != q.act.end(), "fake quant: layer '{}' is {} but input {} has no calibrated scale / zero point", layer,
            precision_name(q.precision), operand);
      return fake_quant_act(x, a->second);
    }
  }
  return x;
}

Assignment make_assignment(const std::vector<models::QuantLayer>& layers, const std::vector<Precision>& precisions,
                           const Calibration& calib, int64_t int4_group, const RoundedWeights* rounded) {
  check(layers.size() == precisions.size(), "make_assignment: {} layers but {} precisions", layers.size(),
        precisions.size());
  Assignment a;
  for (size_t i = 0; i < layers.size(); ++i) {
    const models::QuantLayer& l = layers[i];
    LayerQuant q;
    q.precision = precisions[i];
    if (q.precision == Precision::int4) q.weight_group = int4_group;
    if (precision_is_integer(q.precision) && models::layer_operands(l.kind) > 0) {
      auto it = calib.find(l.name);
      check(it != calib.end() && !it->second.empty(), "make_assignment: layer '{}' at {} has no calibration", l.name,
            precision_name(q.precision));
      for (const auto& [op, ci] : it->second) q.act[op] = ci.params;
    }
    if (rounded) q.weights = rounded->find(l.name, q.precision);
    if (q.weights && q.precision == Precision::int4)  // the record decides the group
      q.weight_group = q.weights->group == q.weights->cols ? 0 : q.weights->group;
    a[l.name] = q;
  }
  return a;
}

Assignment uniform_assignment(const models::Model& m, Precision p, const Calibration& calib, int64_t int4_group,
                              const RoundedWeights* rounded) {
  const std::vector<models::QuantLayer> layers = m.quant_layers();
  return make_assignment(layers, std::vector<Precision>(layers.size(), p), calib, int4_group, rounded);
}

}  // namespace mpq::quant
