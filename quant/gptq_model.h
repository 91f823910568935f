// Whole-model weight rounding on calibration samples (quant/gptq.h per layer, quant/gptq_hessian.h for the
// statistics), and the simulation hook that runs the rounded weights.
//
//   parallel   : one capture of every weight layer's input statistics on the network with fp32 weights (in as
//                many passes over the calibration samples as the memory budget needs), then every layer
//                rounded from its statistics;
//   sequential : layers in waves along the graph (a wave: every layer whose upstream weight layers are all
//                rounded); each wave's inputs are captured on the network whose earlier layers already run
//                their rounded weights (and bias corrections), so a layer's rounding sees, and partly
//                compensates, the error upstream. `waves_per_pass` > 1 captures several waves per pass (the
//                later ones then see some upstream layers unrounded) to save passes.
// Inputs are captured as the layer receives them in the simulation: activation-quantized (uint8, the given
// calibration) when quantize_inputs is set. With RoundingOptions::asymmetric, every batch also runs the fp32
// network (original biases) to record the reference inputs. Bias corrections are written into the model's parameters
// (the BN shift beta when the layer folds a BN, else the layer's bias), so that the fp32 forward and every later
// capture see them; the returned backup restores them.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "models/model.h"
#include "quant/gptq.h"
#include "quant/gptq_hessian.h"
#include "quant/observers.h"
#include "quant/task.h"

namespace mpq::quant {

struct ModelRoundingOptions {
  RoundingOptions layer;              // every weight layer (int4 by default)
  std::set<std::string> int8_layers;  // these at 8 bits, per output channel (e.g. first conv and classifier)
  bool depthwise_exhaustive = false;  // depthwise convs (rows of K <= kExhaustiveMaxK): Rounding::exhaustive
  std::function<bool(const models::QuantLayer&)> only;  // when set, the layers it rejects keep their fp32 weights
  CaptureOptions capture;
  bool sequential = false;
  int waves_per_pass = 1;
  bool quantize_inputs = true;
  int64_t max_capture_bytes = int64_t(3) << 30;  // parallel: f64 statistics held per pass
};

struct RoundedModel {
  std::map<std::string, QuantizedWeight> weights;            // weight layer -> record
  std::map<std::string, Shape> shapes;                       // weight layer -> the weight's shape (for dequantize)
  std::map<std::string, double> output_error;                // layer -> layer_output_error on its captured statistics
  std::vector<std::string> notes;                            // per-layer fallbacks (e.g. group -> per channel)
  double capture_seconds = 0, rounding_seconds = 0;          // wall time
  double capture_cpu_seconds = 0, rounding_cpu_seconds = 0;  // process CPU time (user + system, all threads)
  int passes = 0;
  std::map<std::string, Tensor> bias_backup;  // parameter name -> value before bias correction
};

// The calibration samples `calib` of `ev` in batches of `batch`.
std::vector<models::Batch> task_batches(TaskEvaluator& ev, const std::vector<int64_t>& calib, int64_t batch);

// Statistics of `layers` captured over the batches `calib` (BERT batches set the row mask) with `inner`
// applied to every layer first, in as many passes as max_bytes of f64 sums allow.
struct CapturedLayers {
  std::map<std::string, LayerStats> stats;
  std::map<std::string, Tensor> weights;  // the incoming (BN-folded) weights
  double seconds = 0, cpu_seconds = 0;    // wall, process CPU (user + system, all threads)
  int passes = 0;
};
// With `reference`: before each batch's capture forward, a reference forward (its `inner` hook; `before` / `after`
// run around it, e.g. to put the original biases back) records the captured layers' inputs, and the statistics
// get the cross terms (LayerStats::xcross) for asymmetric targets.
struct CaptureReference {
  std::shared_ptr<models::LayerHook> inner;  // null: the plain fp32 network
  std::function<void()> before, after;
};
CapturedLayers capture_layers(models::Model& m, const std::vector<models::Batch>& calib,
                              const std::vector<models::QuantLayer>& layers, std::shared_ptr<models::LayerHook> inner,
                              const CaptureOptions& opt, int64_t max_bytes,
                              const CaptureReference* reference = nullptr);

// User + system CPU time of this process so far (all threads): a load-independent cost measure on a shared machine.
double process_cpu_seconds();

// The layers rounding applies to: every layer with a weight and an input (not attention matmuls, which have no
// weight, nor embedding tables, which have no input: those round to nearest).
std::vector<models::QuantLayer> weight_layers(const models::Model& m);

// Runs the recipe over the calibration batches `calib`; `act` holds the activation parameters of every
// layer input (quant::calibrate). Parallel mode uses `cached` statistics when given (captured with the same
// capture options and input quantization). `log` receives progress lines (may be empty).
RoundedModel round_model(models::Model& m, const std::vector<models::Batch>& calib, const Calibration& act,
                         const ModelRoundingOptions& opt, const CapturedLayers* cached = nullptr,
                         const std::function<void(const std::string&)>& log = {});

// Puts back the parameters round_model changed for bias correction.
void restore_biases(models::Model& m, const RoundedModel& r);

// Simulation: layers in `weights` run their dequantized rounded weight (q * s); every layer input in `act` is
// fake-quantized to uint8 with its parameters (W4A8 / W8A8); anything else passes through.
class RoundedWeightsHook : public models::LayerHook {
 public:
  RoundedWeightsHook(const Calibration& act, bool quantize_inputs) : act_(act), quantize_inputs_(quantize_inputs) {}
  void set_weight(const std::string& layer, Tensor w) { w_[layer] = std::move(w); }
  Tensor on_weight(const std::string& layer, const Tensor& w) override;
  Tensor on_input(const std::string& layer, int operand, const Tensor& x) override;

 private:
  Calibration act_;
  bool quantize_inputs_;
  std::map<std::string, Tensor> w_;
};

// The parameter that shifts `layer`'s output bias one to one: a folded BN's beta, else the layer's own bias.
// Throws naming the layer when it has none.
Tensor& output_bias_parameter(models::Model& m, const std::string& layer, std::string* name = nullptr);

}  // namespace mpq::quant
