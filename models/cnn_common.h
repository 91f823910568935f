// Shared building blocks of the CNNs (ResNet50, MobileNetV2): a conv (+ optional batch norm) unit, a
// linear unit, the quantizable-layer graph builder, the CnnModel base (BN folding option, weight layout,
// preprocessing preset) and a deterministic formula initialisation used by the PyTorch goldens.
//
// Parameter names are torchvision's: a unit with conv module "layer1.0.conv1" and BN module "layer1.0.bn1"
// owns "layer1.0.conv1.weight" (+ ".bias" when the layout has conv biases) and "layer1.0.bn1.{weight,bias,
// running_mean,running_var}".
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "models/data/image.h"
#include "models/io/common.h"
#include "models/model.h"
#include "ops/ops.h"

namespace mpq::models {

using NamedTensors = std::vector<std::pair<std::string, Tensor*>>;

// How a conv pads: PyTorch-style symmetric k/2 padding, or TensorFlow SAME (computed from the input
// size; asymmetric, extra pixel at the bottom/right, when the total padding is odd).
enum class PadMode { symmetric, tf_same };

// Static description of one conv unit.
struct ConvSpec {
  std::string conv;  // module name, e.g. "layer1.0.conv1"
  std::string bn;    // BN module name, "" when the layout has no BN (folded TFLite)
  int64_t in = 0, out = 0, kernel = 1, stride = 1, groups = 1;
  bool bias = false;  // conv has a bias
  PadMode pad = PadMode::symmetric;
  float eps = 1e-5f;  // BN epsilon
};

struct ConvUnit {
  ConvSpec spec;
  Tensor weight;        // [out, in/groups, kernel, kernel]
  Tensor bias;          // [out], undefined when !spec.bias
  Tensor gamma, beta;   // [out] each, undefined without BN
  Tensor running_mean;  // [out]
  Tensor running_var;   // [out]

  explicit ConvUnit(ConvSpec s);  // zero weights, identity BN stats
  bool has_bn() const { return !spec.bn.empty(); }
  ops::Conv2dParams params(int64_t h, int64_t w) const;  // padding for an h x w input
  ConvGeometry geometry() const;
  int64_t out_size(int64_t in_size) const;
  int64_t macs(int64_t in_h, int64_t in_w) const;  // per sample
  // conv (+ BN). fold: use the BN-folded conv (eval, no autograd recording); training: batch statistics.
  // Calls the bound layer hook (see bind_layer_hook) as on_input(spec.conv, 0, x) and on_weight(spec.conv,
  // W), W being the BN-folded weight when folding, else the raw conv weight (BN then runs unquantized).
  Tensor forward(const Tensor& x, bool training, bool fold);
  void collect(NamedTensors& out, bool params_only);
  // Reads this unit's tensors (torchvision names) from `map`, checking shapes and float dtypes (f32, f16, bf16;
  // integer tensors are refused, as BERT's loader does); errors name file and tensor.
  void load(const io::TensorMap& map, const std::string& file);
};

struct LinearUnit {
  std::string name;  // module name, e.g. "fc"
  int64_t in = 0, out = 0;
  Tensor weight;  // [out, in]
  Tensor bias;    // [out]
  LinearUnit(std::string n, int64_t i, int64_t o);
  // linear; calls the bound layer hook (see bind_layer_hook) on the weight and the input.
  Tensor forward(const Tensor& x) const;
  void collect(NamedTensors& out, bool params_only);
  void load(const io::TensorMap& map, const std::string& file);
};

// The conv parameters of geometry `g` on an h x w input (the same padding as ConvUnit::params).
ops::Conv2dParams conv_params(const ConvGeometry& g, int64_t h, int64_t w);

// Builds the quantizable-layer list: layers are added in execution order with their producers; residual
// adds are stated as the set of layers whose outputs meet there. finish() fills consumers (the inverse of
// producers) and residual_partners (every other member of every add the layer takes part in).
class QuantGraph {
 public:
  void add(std::string name, LayerKind kind, std::string weight, int64_t macs, std::vector<std::string> producers,
           ConvGeometry conv = {});
  void residual(const std::vector<std::string>& members) { adds_.push_back(members); }
  std::vector<QuantLayer> finish() const;

 private:
  std::vector<QuantLayer> layers_;
  std::vector<std::vector<std::string>> adds_;
};

// The eval-mode forward as a flat list of steps over numbered activation values, for compiled inference
// (models/native): value 0 is the input image batch [N, 3, H, W]; step i writes value i + 1. A conv step is
// the unit's conv (BN folded exactly as forward() folds it in eval mode), then `+ residual` when set, then
// `act`; the steps describe the same arithmetic as forward(), in an order where every value is written
// before it is read.
struct CnnStep {
  enum class Op { conv, max_pool, global_avg_pool, linear };
  enum class Act { none, relu, relu6 };
  Op op = Op::conv;
  const ConvUnit* conv = nullptr;      // Op::conv
  const LinearUnit* linear = nullptr;  // Op::linear ([N, in] -> [N, out])
  int input = 0;                       // value read
  int residual = -1;                   // Op::conv: value added before `act` (same shape as the output), or -1
  Act act = Act::none;                 // Op::conv
  ops::Pool2dParams pool{};            // Op::max_pool
};

// Builds a step list; every method appends one step and returns the value it writes (value 0 is the network
// input, step i writes value i + 1).
class CnnSteps {
 public:
  int conv(const ConvUnit& u, int input, int residual, CnnStep::Act act) {
    CnnStep st;
    st.conv = &u, st.input = input, st.residual = residual, st.act = act;
    return push(st);
  }
  int max_pool(int input, const ops::Pool2dParams& p) {
    CnnStep st;
    st.op = CnnStep::Op::max_pool, st.input = input, st.pool = p;
    return push(st);
  }
  int global_avg_pool(int input) {
    CnnStep st;
    st.op = CnnStep::Op::global_avg_pool, st.input = input;
    return push(st);
  }
  int linear(const LinearUnit& u, int input) {
    CnnStep st;
    st.op = CnnStep::Op::linear, st.linear = &u, st.input = input;
    return push(st);
  }
  std::vector<CnnStep> take() { return std::move(steps_); }

 private:
  int push(const CnnStep& st) {
    steps_.push_back(st);
    return int(steps_.size());
  }
  std::vector<CnnStep> steps_;
};

// Base of the CNNs. BN folding (default on) is applied per forward call, only in eval mode and only while
// grad mode is off, so training-mode BN and gradients through eval-mode BN stay exact.
class CnnModel : public Model {
 public:
  void set_fold_bn(bool on) { fold_bn_ = on; }
  bool fold_bn_enabled() const { return fold_bn_; }
  // "torchvision", "keras" (ResNet50 from TF.js) or "tflite" (MobileNetV2, BN folded, 1001 classes).
  virtual std::string layout() const = 0;
  virtual data::Preset preset() const = 0;
  // Metadata written with the weights by `mpq convert` ({"layout": ...}).
  virtual std::map<std::string, std::string> metadata() const { return {{"layout", layout()}, {"model", name()}}; }
  // The forward as steps (see CnnStep); the pointers stay valid while the model lives and is not reloaded.
  // The base throws (a CNN without a step description has no native executor).
  virtual std::vector<CnnStep> inference_steps() const;
  // Turns every conv + batch-norm unit into a plain conv with a bias (zero where the layout has none) and drops
  // the BN parameters, WITHOUT folding them into the weights: the structure of a BN-folded network, for weights
  // set afterwards (a deployed model file stores convs folded: deploy/model_file.h). Layout, conv weight names
  // and the quantizable layers stay; named_tensors() then lists no BN tensors.
  void remove_batch_norm();

 protected:
  // Every CNN forward calls this first: it also binds this model's layer hook (possibly none) for the
  // conv / linear units of the forward that follows (bind_layer_hook).
  bool fold_now(bool training) const;
  bool fold_bn_ = true;
};

// The layer hook the units of the current thread call (nullptr: plain fp32). CnnModel::fold_now binds the
// model's hook at the start of each forward, so the models pass nothing to the units. Thread-local and
// shared (never dangling); a unit called directly, outside a model forward, sees the hook of the last CNN
// forward on its thread: bind_layer_hook(nullptr) first when that matters.
void bind_layer_hook(std::shared_ptr<LayerHook> hook);
LayerHook* bound_layer_hook();

// The weight layout stored in a safetensors file's metadata, or "" when absent.
std::string safetensors_layout(const std::map<std::string, std::string>& metadata);

// BN epsilon accepted from a safetensors file's "bn_eps" metadata: Keras uses 1e-3, PyTorch 1e-5; the range
// leaves decades of room on both sides while refusing what cannot be an epsilon (0, negative, > 1, denormal).
inline constexpr double kMinBnEps = 1e-12;
inline constexpr double kMaxBnEps = 1.0;
// Parses "bn_eps" strictly: a plain decimal number (digits, '.', exponent; no spaces, "nan", "inf", hex or
// trailing characters) in [kMinBnEps, kMaxBnEps]. Throws naming `file`, the field and the value.
float parse_bn_eps(const std::string& value, const std::string& file);

// Deterministic "random" initialisation shared with tests/gen_golden_cnn.py (no weight file is committed).
// For tensor `name` with n elements, t[i] = a + b * sin(i * 0.37 + phase(name)), phase = 0.1 * h,
// h = (sum_j (j + 1) * byte_j) mod 997, computed in double and rounded to f32, with (a, b):
//   running_mean (0, 0.1); running_var (0.75, 0.25); 1-D ".weight" (BN gamma) (1, 0.2); ".bias" (0, 0.1);
//   >= 2-D weights (0, sqrt(3 / fan_in)), fan_in = numel / shape[0].
void formula_init(const std::string& name, Tensor& t);
void formula_init(Model& m);
// Formula input image batch: x[i] = sin(i * 0.11 + 0.5) * 1.5, shape [n, 3, h, w].
Tensor formula_input(int64_t n, int64_t h, int64_t w);

}  // namespace mpq::models
