// The task interface the quantization analysis runs on, model-agnostic: an evaluator runs a models::Model
// (eval mode, no grad, with whatever LayerHook is set on it) over sample indices of its dataset and
// returns the task metric and the mean loss. Two evaluators: ImageNet-style folders (CNNs, top-1) and
// SST-2 sentences (BERT, accuracy). make_task() builds the evaluator and the seeded disjoint splits for a
// model and a data folder. The calibration pass is written on this interface too.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/bert_train.h"
#include "models/cnn_common.h"
#include "models/data/imagenet.h"
#include "quant/observers.h"
#include "quant/splits.h"

namespace mpq::quant {

struct TaskResult {
  double metric = 0;  // higher is better (top-1 as a fraction in [0, 1] for images)
  double loss = 0;    // mean per-sample loss (cross-entropy, natural log)
  int64_t samples = 0;
  // [samples] per-sample outcome behind `metric`, in `indices` order: '1' where the top-1 / predicted class is
  // the label, '0' elsewhere. Paired statistics between two configurations (quant/search.h) read it.
  std::string hits;
  int64_t nonfinite = 0;  // samples whose outputs held a NaN / infinity (each one a miss in `metric`)
};

class TaskEvaluator {
 public:
  virtual ~TaskEvaluator() = default;
  virtual TaskResult evaluate(models::Model& m, const std::vector<int64_t>& indices) = 0;
  virtual int64_t size() const = 0;  // samples available (indices are in [0, size()))
  virtual std::string metric_name() const = 0;
  // Model outputs (logits [N, C] f32) on `indices`, eval mode, no grad; used to measure output errors.
  virtual Tensor outputs(models::Model& m, const std::vector<int64_t>& indices) = 0;
  // The model input of `indices` as one batch, labels included (for losses with gradients: the Hessian).
  virtual models::Batch batch(const std::vector<int64_t>& indices) = 0;
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
  models::Batch batch(const std::vector<int64_t>& indices) override;

 private:
  const data::ImageBatch& batch_for(const std::vector<int64_t>& idx);
  const data::ImageNetFolder& folder_;
  data::Preset preset_;
  int64_t batch_;
  int64_t cache_bytes_, cached_bytes_ = 0;
  std::map<std::vector<int64_t>, data::ImageBatch> cache_;
  data::ImageBatch scratch_;
};

// Accuracy / cross-entropy of a sentence classifier (BERT) over tokenised sentences; batches of `batch`
// sentences in index order, each padded to its longest sentence (padding is masked: logits do not depend
// on it).
class SentenceTaskEvaluator : public TaskEvaluator {
 public:
  explicit SentenceTaskEvaluator(models::EncodedSet set, int64_t batch = 64);
  TaskResult evaluate(models::Model& m, const std::vector<int64_t>& indices) override;
  int64_t size() const override { return int64_t(set_.size()); }
  std::string metric_name() const override { return "accuracy"; }
  Tensor outputs(models::Model& m, const std::vector<int64_t>& indices) override;
  models::Batch batch(const std::vector<int64_t>& indices) override;

 private:
  models::EncodedSet set_;
  int64_t batch_;
};

// A model's task on a data folder: the evaluator and the seeded, disjoint calibration / search / test splits.
//   CNNs (resnet50, mobilenetv2): DIR is an ImageNet folder (labels.txt + images); the three splits are
//     consecutive pieces of one seeded permutation of its samples (quant/splits.h).
//   bert: DIR holds SST-2's train.tsv and dev.tsv. Calibration sentences are a seeded sample of train.tsv
//     (what the model was trained on: no labels are used, only activations and the fp32 outputs); the
//     search and test splits are disjoint pieces of one seeded permutation of dev.tsv (default: half each).
//     The evaluator's index space is train.tsv's sentences followed by dev.tsv's.
// Sizes < 0 take the task default: images calib 16, search 128, test 256; SST-2 calib 64, search
// dev/2, test the rest of dev. test = 0 means every sample left after calib and search (from dev for SST-2).
struct TaskOptions {
  int64_t calib = -1, search = -1, test = -1;
  int64_t rounding = -1;  // weight-rounding samples (Splits::rounding; < 0: 128)
  int64_t batch = -1;     // evaluation batch (< 0: images 16, sentences 64)
};
struct Task {
  std::unique_ptr<TaskEvaluator> ev;
  Splits splits;
  std::string metric_label;      // "top-1" | "accuracy"
  nlohmann::json data_identity;  // the sample files' identities (path, size, content hash): cache keys
  std::string split_note;        // one sentence: where each split comes from
  std::shared_ptr<void> data;    // keeps the data the evaluator refers to alive
};
// Throws naming the folder / file when it holds no usable samples or the split sizes exceed it.
// `weights`: the model's weights path (BERT's vocab.txt sits beside it).
Task make_task(models::Model& m, const std::string& weights, const std::string& data_dir, const TaskOptions& opt,
               uint64_t seed);

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

// Activation ranges observed on `batches` (observers picked per layer input by the channel-weighted proxy:
// no task, no labels; what `mpq eval|bench|profile --precision int8` calibrates with).
Calibration calibrate_batches(models::Model& m, const std::vector<models::Batch>& batches);

}  // namespace mpq::quant
