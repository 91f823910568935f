// The task interface the quantization analysis runs on, model-agnostic: an evaluator runs a models::Model
// (eval mode, no grad, with whatever LayerHook is set on it) over sample indices of its dataset and
// returns the task metric and the mean loss. The CNN image evaluator lives here; BERT's (SST-2) plugs in
// the same way. The calibration pass is written on this interface too.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "models/cnn_common.h"
#include "models/data/imagenet.h"
#include "quant/observers.h"

namespace mpq::quant {

struct TaskResult {
  double metric = 0;  // higher is better (top-1 as a fraction in [0, 1] for images)
  double loss = 0;    // mean per-sample loss (cross-entropy, natural log)
  int64_t samples = 0;
};

class TaskEvaluator {
 public:
  virtual ~TaskEvaluator() = default;
  virtual TaskResult evaluate(models::Model& m, const std::vector<int64_t>& indices) = 0;
  virtual int64_t size() const = 0;  // samples available (indices are in [0, size()))
  virtual std::string metric_name() const = 0;
  // Model outputs (logits [N, C] f32) on `indices`, eval mode, no grad; used to measure output errors.
  virtual Tensor outputs(models::Model& m, const std::vector<int64_t>& indices) = 0;
};

// Top-1 / cross-entropy over an ImageNet-style folder. Decoded batches are kept in memory (keyed by their
// index list) up to `cache_bytes`, so the many probes of the analysis decode each image once.
class ImageTaskEvaluator : public TaskEvaluator {
 public:
  ImageTaskEvaluator(const data::ImageNetFolder& folder, data::Preset preset, int64_t batch = 16,
                     int64_t cache_bytes = int64_t(1) << 30);
  TaskResult evaluate(models::Model& m, const std::vector<int64_t>& indices) override;
  int64_t size() const override { return int64_t(folder_.size()); }
  std::string metric_name() const override { return "top1"; }
  Tensor outputs(models::Model& m, const std::vector<int64_t>& indices) override;

 private:
  const data::ImageBatch& batch_for(const std::vector<int64_t>& idx);
  const data::ImageNetFolder& folder_;
  data::Preset preset_;
  int64_t batch_;
  int64_t cache_bytes_, cached_bytes_ = 0;
  std::map<std::vector<int64_t>, data::ImageBatch> cache_;
  data::ImageBatch scratch_;
};

// How the calibration picks among the observers per layer input:
//   proxy        : smallest channel-weighted input error (quant/observers.h; no extra forward passes);
//   model_output : smallest ||z_c - z||^2, z the fp32 model outputs (logits) on the first `select_samples`
//                  calibration samples and z_c the outputs with ONLY this operand quantized by candidate c
//                  (weights and every other input fp32): the layer's output error as the task sees it.
//                  Costs one forward of select_samples per distinct candidate per operand.
// Measured on MobileNetV2 (TFLite), 16 calibration images, uniform int8, 256 evaluation images: fp32 CE
// 0.9904; min-max everywhere 0.9936, MSE everywhere 1.0086, percentile 1.0135, proxy pick 1.0092 -- the
// proxy (uncorrelated-error model) underrates clipping damage, hence model_output is the default.
enum class ObserverSelect { proxy, model_output };
struct CalibrateOptions {
  ObserverOptions observers;
  ObserverSelect select = ObserverSelect::model_output;
  int64_t select_samples = 4;
};

// Runs the evaluator over `indices` with a CalibrationHook on the model (the previous hook is restored),
// then picks per layer input one observer by `opt.select`.
Calibration calibrate(models::Model& m, TaskEvaluator& ev, const std::vector<int64_t>& indices,
                      const CalibrateOptions& opt = {});

}  // namespace mpq::quant
