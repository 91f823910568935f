// The common interface of the reference networks (ResNet50, MobileNetV2, BERT).
//
// A model owns its parameters (named with the canonical safetensors names: torchvision for the CNNs,
// Hugging Face for BERT) and states its quantizable layers with the graph relations that the
// dependency analysis needs (quant/, docs/method.md).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mpq::models {

// embedding: a table of rows gathered by token id (BERT's word and position embeddings); its precision is
// the table's storage (int8 / int4 rows with per-row or per-group scales), it quantizes no activation.
enum class LayerKind { conv, depthwise_conv, linear, attention_matmul, embedding };
// How many activation operands a layer of this kind quantizes at int8 / int4 (and calibrates).
constexpr int layer_operands(LayerKind k) {
  return k == LayerKind::attention_matmul ? 2 : k == LayerKind::embedding ? 0 : 1;
}

// Geometry of a conv layer (LayerKind conv / depthwise_conv): what rebuilding its im2col rows from the
// layer's input needs (weight-rounding calibration, quant/gptq_hessian.h). Square kernels, no dilation.
struct ConvGeometry {
  int64_t in_channels = 0, out_channels = 0;
  int64_t kernel = 1, stride = 1, groups = 1;
  bool tf_same = false;  // TF SAME padding (from the input size; extra pixel bottom / right when odd)
  int64_t pad = 0;       // !tf_same: zero padding on every side
};

// One quantizable layer: every conv and linear, plus BERT's two attention matmuls (QK^T, PV) and its word and
// position embedding tables.
struct QuantLayer {
  std::string name;  // stable, e.g. "layer1.0.conv2", "bert.encoder.layer.3.attention.self.query"
  LayerKind kind = LayerKind::conv;
  std::string weight;  // parameter name of its weight ("" for attention matmuls)
  int64_t macs = 0;    // multiply-accumulates per sample at the model's default input size
  std::vector<std::string>
      producers;  // quantizable layers whose output (possibly through non-quantizable ops) feeds it
  std::vector<std::string> consumers;          // quantizable layers it feeds
  std::vector<std::string> residual_partners;  // layers whose outputs are added to its output (same residual add)
  ConvGeometry conv;                           // conv / depthwise_conv only (in_channels 0 otherwise)
};

// What a model's input is: a preprocessed image batch [N, 3, H, W] or token ids [N, L] (+ mask).
struct Batch {
  Tensor images;                // [N, 3, H, W] f32 (CNNs)
  std::vector<int32_t> ids;     // [N * L] token ids (BERT), 0 = [PAD]
  std::vector<int32_t> mask;    // [N * L] 1 = real token (BERT)
  int64_t seq_len = 0;          // L
  std::vector<int32_t> labels;  // [N] class indices (already offset for the model's label space)
  int64_t size() const { return images.defined() ? images.size(0) : (seq_len ? int64_t(ids.size()) / seq_len : 0); }
};

// Per-layer interception used by quantization (fake-quant simulation, calibration observers, the
// dependency probes). A model calls it for every quantizable layer, on the layer's weight (after BN
// folding when the forward folds) and on each activation operand the layer consumes; with no hook set the
// forward is plain fp32. `operand` is 0 for the input of a conv / linear, 0 and 1 for the two operands of
// an attention matmul.
// on_bias sees the bias the layer adds after its product (after batch-norm folding; possibly undefined when a
// conv has neither bias nor batch norm): rounding with bias correction adjusts it.
struct LayerHook {
  virtual ~LayerHook() = default;
  virtual Tensor on_weight(const std::string& layer, const Tensor& w) { return w; }
  virtual Tensor on_input(const std::string& layer, int operand, const Tensor& x) { return x; }
  virtual Tensor on_bias(const std::string& layer, const Tensor& b) { return b; }
};

class Model {
 public:
  virtual ~Model() = default;
  void set_layer_hook(std::shared_ptr<LayerHook> hook) { hook_ = std::move(hook); }
  const std::shared_ptr<LayerHook>& layer_hook() const { return hook_; }
  virtual std::string name() const = 0;  // "resnet50", "mobilenetv2", "bert"
  // Logits [N, classes]. training selects batch statistics / dropout; gradients flow when params require grad.
  virtual Tensor forward(const Batch& batch, bool training = false) = 0;
  // All parameters and buffers by canonical name (buffers: running stats), in a stable order.
  virtual std::vector<std::pair<std::string, Tensor*>> named_tensors() = 0;
  // The trainable subset, in a stable order.
  virtual std::vector<std::pair<std::string, Tensor*>> parameters() = 0;
  virtual std::vector<QuantLayer> quant_layers() const = 0;
  virtual int64_t num_classes() const = 0;

 protected:
  std::shared_ptr<LayerHook> hook_;
};

}  // namespace mpq::models
