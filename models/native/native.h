// Native inference: a model compiled for one per-layer precision assignment and run by the low-precision
// kernels (ops/kernels/lowp.h, ops/kernels/nhwc.h, oneDNN alternatives), with no autograd and no Tensor
// op per element-wise step.
//
// Compilation packs every weight ONCE into its kernel's layout at the layer's precision (fp32, fp16, bf16,
// int8 W8A8, int4 W4A8), fuses bias / BN (already folded) / ReLU / ReLU6 / residual add into the GEMM or
// conv epilogue, and plans the dtype of every activation buffer so that quantize / dequantize happen only
// at precision boundaries:
//   - a layer's input is converted to the dtype its kernel reads (u8 with the layer's calibrated scale and
//     zero point for int8 / int4, f16 for fp16, f32 for fp32 / bf16) only when the producer did not
//     already write that dtype;
//   - a producer writes u8 directly (requantizing in its epilogue) when every consumer reads u8 with the
//     same parameters, f16 when every consumer reads f16, f32 otherwise.
// CNN activations are NHWC throughout (one layout, no per-layer reorders); BERT's are [L, D] row-major.
//
// The numerics equal the fake-quant simulation (quant/fake_quant.h) of the same assignment up to f32
// summation order: the same weight quantizers, the same activation rounding (round half to even, clamp
// [0, 255]), fp16 / bf16 rounding of weights and inputs. tests/test_native_*.cpp check the logits
// against FakeQuantHook on real weights and images / sentences.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/precision.h"
#include "core/tensor.h"
#include "models/model.h"

namespace mpq::native {

struct CompileOptions {
  // Per layer, time each applicable implementation (ours vs oneDNN) on the layer's real shapes a few times
  // at compile time and keep the faster; false: the first usable implementation of the ordered list.
  bool autotune = true;
  int autotune_reps = 5;
  // CNN residual adds: true reads the added tensor unquantized (f32), as the fake-quant forward adds it;
  // false lets it keep the format its other readers share (u8 when they all read u8 with one scale / zero
  // point, the quantized add of ONNX Runtime's QDQ models): less memory traffic and no separate quantize
  // pass, but the logits then differ from the simulation by that tensor's quantization error in the sum.
  bool exact_residuals = true;

  // For accuracy measurement (`mpq eval`, the search's native probes): no autotuning, so the first usable
  // implementation of each op's ordered list -- ours -- runs every time. The timing-based choice between our
  // int8 conv and oneDNN's changes from run to run, and the two round the requantization differently at ties
  // (f32 operation order in the epilogue), which moved MobileNetV2 int8 top-1 on 64 images between 76.6 and
  // 78.1 % across runs. With these options the same figure comes back every run.
  static CompileOptions reproducible() {
    CompileOptions o;
    o.autotune = false;
    return o;
  }
};

// Time spent in one step of a profiled run. Steps are the quantizable layers (name = QuantLayer::name,
// including the conversion of its input when the producer wrote another dtype) and the non-quantizable
// ops between them (names like "maxpool", "avgpool", "embeddings", "layer.3.attention.softmax").
struct StepTime {
  std::string name;
  bool quant_layer = false;
  double ms = 0;
};

class NativeModel {
 public:
  virtual ~NativeModel() = default;
  // Logits [N, classes] f32. CNN: batch.images [N, 3, H, W] preprocessed f32 (the same input the autograd
  // model takes; converted to NHWC inside). BERT: batch.ids / mask / seq_len.
  virtual Tensor run(const models::Batch& batch) = 0;
  // Like run(), also timing every step (adds a clock read per step; use for `mpq profile`).
  virtual Tensor run_profiled(const models::Batch& batch, std::vector<StepTime>& steps) = 0;
  // Bytes of packed weights (including scales / column sums) of this configuration.
  virtual size_t weight_bytes() const = 0;
  // The part of weight_bytes() each quantizable layer holds (0 for the weightless attention matmuls).
  virtual std::map<std::string, size_t> layer_weight_bytes() const = 0;
  // Per quantizable layer, the implementation that runs it (e.g. "gemm_qu8_qc8w_14x32c4__avx512vnni",
  // "conv_u8s8__onednn"), after autotuning.
  virtual std::map<std::string, std::string> implementations() const = 0;
};

// Compiles `model` (ResNet50 / MobileNetV2 / BERT, any layout the loaders produce) for `assignment`
// (every quantizable layer; missing layers run fp32). int8 / int4 layers need calibrated input parameters
// (LayerQuant::act); errors name the layer. The model must outlive nothing: weights are copied / packed.
// Each layer's rounded-weight record (LayerQuant::weights) is let go once the layer is packed, so an
// assignment moved in (the model-file loader's) never holds a model's codes and its packed weights at once;
// a caller that keeps its own copy keeps the records (they are shared).
std::unique_ptr<NativeModel> compile(models::Model& model, Assignment assignment, const CompileOptions& opt = {});

// A compiled model seen through the models::Model interface, so that code written against Model (the task
// evaluators: `mpq search --eval native`, `mpq eval --precision`) runs the native kernels. forward() is
// inference only (training must be false, no hook is consulted, no gradient flows); the layer list, name and
// class count are the source model's; it owns no trainable tensors.
class CompiledModel : public models::Model {
 public:
  CompiledModel(const models::Model& source, std::unique_ptr<NativeModel> compiled);
  std::string name() const override { return name_; }
  Tensor forward(const models::Batch& batch, bool training = false) override;
  std::vector<std::pair<std::string, Tensor*>> named_tensors() override { return {}; }
  std::vector<std::pair<std::string, Tensor*>> parameters() override { return {}; }
  std::vector<models::QuantLayer> quant_layers() const override { return layers_; }
  int64_t num_classes() const override { return classes_; }
  NativeModel& native() { return *compiled_; }  // the executor itself (run, run_profiled, weight bytes)

 private:
  std::string name_;
  std::vector<models::QuantLayer> layers_;
  int64_t classes_;
  std::unique_ptr<NativeModel> compiled_;
};

// Per model kind (called by compile()); both refuse an assignment naming a layer the model does not have
// (check_assignment_layers).
std::unique_ptr<NativeModel> compile_cnn(models::Model& model, Assignment a, const CompileOptions& opt);
std::unique_ptr<NativeModel> compile_bert(models::Model& model, Assignment a, const CompileOptions& opt);

// Throws naming the first layer of `assignment` that is not a quantizable layer of `model`.
void check_assignment_layers(const models::Model& model, const Assignment& assignment);

// Lets go of `layer`'s rounded-weight record in `a` (compile's engines, once the layer is packed).
void release_record(Assignment& a, const std::string& layer);

}  // namespace mpq::native
