// Private to models/native/cnn_native*.cpp: the compiled CNN (ResNet50 / MobileNetV2) — its layers with
// packed weights, the per-value activation formats, and the per-input-size execution plans.
//
// Values are the activations of models::CnnStep (value 0 = the input image, step i writes value i + 1);
// every value is one NHWC buffer [N, h, w, c] (c innermost) in one format for the whole run:
//   f32, f16 (IEEE half bits), or u8 with one (scale, zero point) — the format rule is in cnn_native.cpp.
// Activation buffers live in one arena per plan, at offsets chosen from the values' live ranges.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/precision.h"
#include "models/cnn_common.h"
#include "models/native/native.h"
#include "models/native/packed_gemm.h"
#include "ops/kernels/f32_impls.h"
#include "ops/kernels/lowp.h"
#include "ops/kernels/nhwc.h"

namespace mpq::native::cnn {

using kernels::ActFormat;  // the format of an activation buffer (ops/kernels/act_format.h)

// How a quantizable layer computes.
enum class Kind {
  gemm,         // 1x1 stride-1 conv or linear: one GEMM on the [rows, cin] activation (all images at once)
  im2col_gemm,  // KxK or strided conv: im2col per image, then one GEMM [OH*OW, KH*KW*cin] x [K, cout]
  depthwise,    // groups == cin == cout: the NHWC depthwise kernels, per image
};

// Which code runs a layer (chosen per plan: the input size fixes the shapes the autotuner times).
enum class Impl { ours, onednn };

class OnednnConv;  // cnn_native_onednn.h

// Geometry of a conv for one input size (padding as models::ConvUnit::params computes it).
struct Geom {
  int64_t H = 0, W = 0, OH = 0, OW = 0;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
};

struct Layer {
  std::string name;  // == QuantLayer::name
  Precision prec = Precision::fp32;
  Kind kind = Kind::gemm;
  bool linear = false;  // a LinearUnit (rows = images)
  int64_t cin = 0, cout = 0, k = 1, stride = 1;
  models::PadMode pad = models::PadMode::symmetric;
  float lo = 0, hi = 0;     // activation clamp after bias and residual (real values)
  std::vector<float> bias;  // [cout], BN folded
  ActFormat in;             // what the kernel reads (u8 with the calibrated params for int8 / int4)
  int64_t group = 0;        // int4: effective weight group (0 = per output channel)
  // int4 grouped KxK conv: the fake-quant groups run along PyTorch's (c, kh, kw) row order, which the
  // (kh, kw, c) im2col order splits; such a layer uses an im2col in (c, kh, kw) order instead.
  bool torch_order = false;
  int64_t K = 0;  // GEMM reduction length (k * k * cin; cin for gemm / linear)

  // Packed weights: only the member for the layer's precision and kind is filled.
  PackedGemm w;                 // gemm / im2col_gemm kinds: N = cout, k in im2col column order (torch_order: PyTorch's)
  kernels::PackedDwF32 dw_f32;  // fp32 and bf16 (bf16-rounded weights, run by the f32 kernel)
  kernels::PackedDwF16 dw_f16;
  kernels::PackedDwQ8 dw_q8;  // int8, and int4 (int4 values in s8, int4 scales)
  size_t weight_bytes() const;
  bool can_write(DType d) const;  // output formats our kernels for this layer produce
};

// One entry of the executed list (models::CnnStep plus the profile name).
struct Step {
  models::CnnStep::Op op = models::CnnStep::Op::conv;
  int layer = -1;  // conv / linear: index into layers
  int in = 0, res = -1, out = 0;
  ops::Pool2dParams pool{};
  std::string name;  // profile name: the layer name, "maxpool" or "avgpool"
};

// Shape of a value for one input size (per image).
struct VShape {
  int64_t h = 1, w = 1, c = 0;
  int64_t pixels() const { return h * w; }
};

// The GEMM kernel a layer runs (one of the precision's list entries; the matching pointer is set).
struct GemmFn {
  const char* name = "";
  kernels::GemmFn f32 = nullptr;
  kernels::F16GemmFn f16 = nullptr;
  kernels::BF16GemmFn bf16 = nullptr;
  kernels::Q8GemmFn q8 = nullptr;
  kernels::Q4GemmFn q4 = nullptr;
  kernels::Q4ConvFn q4conv = nullptr;  // int4 im2col layers: an implicit-GEMM conv instead of im2col + q4
};

// Per-layer choice for one plan.
struct LayerRun {
  Impl impl = Impl::ours;
  GemmFn gemm;                      // Impl::ours, gemm / im2col_gemm kinds
  std::shared_ptr<OnednnConv> dnn;  // Impl::onednn
  std::string name;                 // what implementations() reports
};

// Everything that depends on the input size: shapes, buffer offsets, scratch, implementation choices.
struct Plan {
  int64_t N = 0, H = 0, W = 0;
  std::vector<VShape> shape;      // per value
  std::vector<size_t> offset;     // per value: byte offset in arena
  kernels::AlignedBytes arena;    // all activation values, [N, h, w, c] each in its format
  kernels::AlignedBytes conv_in;  // a layer's converted input, [N, h, w, cin] in the layer's format
  kernels::AlignedBytes col;      // im2col of one image, [OH*OW, K] in the layer's input dtype
  kernels::AlignedBytes acc;      // fp32 GEMM accumulator when the output is not f32, [rows, cout] f32
  kernels::AlignedBytes dnn_in;   // a oneDNN bf16 conv's input in bf16, [N, h, w, cin]
  kernels::AlignedBytes dnn_w;    // a oneDNN int4 conv's weights widened for one call (LayerIO::dnn_w)
  std::vector<Geom> geom;         // per layer
  std::vector<LayerRun> run;      // per layer
};

// Arguments of one layer execution. `x` is in L.in's format, [N, H, W, cin]; `y` in `out`'s format.
struct LayerIO {
  int64_t N = 1;
  const uint8_t* x = nullptr;
  uint8_t* y = nullptr;
  ActFormat out;
  const uint8_t* res = nullptr;  // [N, OH, OW, cout] or null
  ActFormat res_fmt;
  uint8_t* col = nullptr;     // im2col scratch
  float* acc = nullptr;       // fp32 GEMM scratch when out is not f32
  uint8_t* dnn_in = nullptr;  // oneDNN bf16 conv: the input rounded to bf16
  // oneDNN int4 conv: its weights widened to s8 for the call, in the primitive's layout (+ its compensation);
  // OnednnConv::make grows it to the largest such layer of the plan
  kernels::AlignedBytes* dnn_w = nullptr;
};

// The compiled model. Not reentrant: the plan's buffers serve one run() at a time (the kernels parallelise
// inside each step). A new input size (N, H, W) builds and autotunes a new plan on first use.
class CnnNative final : public NativeModel {
 public:
  CnnNative(models::CnnModel& m, Assignment a, const CompileOptions& opt);  // a: as native::compile
  Tensor run(const models::Batch& batch) override;
  Tensor run_profiled(const models::Batch& batch, std::vector<StepTime>& steps) override;
  size_t weight_bytes() const override;
  std::map<std::string, size_t> layer_weight_bytes() const override;
  std::map<std::string, std::string> implementations() const override;

  // For tests: the format of every value (index = value id) and of what each layer reads.
  const std::vector<ActFormat>& value_formats() const { return fmt_; }
  const std::vector<Layer>& layers() const { return layers_; }
  const std::vector<Step>& steps() const { return steps_; }

 private:
  void plan_formats();
  bool step_can_write(int step, DType d) const;  // step -1: the input image
  Plan& plan_for(int64_t N, int64_t H, int64_t W);
  void build_plan(Plan& p);
  void choose_impls(Plan& p);
  Tensor execute(const Tensor& images, std::vector<StepTime>* times);
  void exec_step(Plan& p, const Step& s);
  void exec_layer(Plan& p, const Step& s);
  LayerIO layer_io(Plan& p, const Step& s, const uint8_t* x);
  uint8_t* value_ptr(Plan& p, int v) { return p.arena.data() + p.offset[size_t(v)]; }

  CompileOptions opt_;
  std::string model_name_;
  int64_t classes_ = 0;
  std::vector<Layer> layers_;
  std::vector<Step> steps_;
  std::vector<ActFormat> fmt_;                // per value
  std::vector<int> producer_;                 // per value: the step writing it (-1: the input image)
  std::vector<int> last_use_;                 // per value: the last step reading it
  std::vector<std::unique_ptr<Plan>> plans_;  // by input size; [0] is the compile-time plan
  size_t last_plan_ = 0;                      // the plan of the latest run (implementations())
};

// ---- cnn_native_layer.cpp: packing and the per-layer kernels ----
// A layer from a conv unit (BN folded as ConvUnit::forward folds it) or a linear unit, weights packed for
// the precision of `q` (errors name the layer).
Layer make_conv_layer(const models::ConvUnit& u, const LayerQuant& q, models::CnnStep::Act act);
Layer make_linear_layer(const models::LinearUnit& u, const LayerQuant& q);
Geom conv_geom(const Layer& L, int64_t H, int64_t W);

void run_layer_ours(const Layer& L, const Geom& g, const LayerRun& r, const LayerIO& io);
// GEMM implementations for layer L on this call's arguments: the dispatcher's choice first, then (all)
// every other non-reference entry of the precision's list whose ISA is enabled.
std::vector<GemmFn> gemm_candidates(const Layer& L, const Geom& g, const LayerIO& io, bool all);
const char* depthwise_impl_name(const Layer& L, const Geom& g, const LayerIO& io);

// Element-wise helpers: f32 -> f16 / u8 (quant/observers.h rounding, bit for bit) or a copy; RNE to bf16.
void convert_input(const uint8_t* x, ActFormat from, uint8_t* y, ActFormat to, int64_t n);
void round_bf16(const float* x, float* y, int64_t n);
kernels::ConvGeom kernel_geom(const Layer& L, const Geom& g);

}  // namespace mpq::native::cnn
