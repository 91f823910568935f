// Task-metric evaluation of an image classifier over a list of samples: top-1, top-5, mean cross-entropy.
// Shared by `mpq eval`, the demo and the search's probes.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/cnn_common.h"
#include "models/data/imagenet.h"

namespace mpq::quant {

// A sample whose logits hold a NaN or an infinity is a miss for top-1 and top-5 (a NaN compares false with
// everything, so counting "logits greater than the target" would call it a hit), is counted in `nonfinite`,
// and adds nothing to the loss sum (the mean loss is over the finite samples; callers report `nonfinite`).
struct EvalTotals {
  int64_t samples = 0, top1 = 0, top5 = 0;
  int64_t nonfinite = 0;  // samples with a non-finite logit
  double loss_sum = 0;    // sum of per-sample cross-entropy (natural log) over the finite samples
  std::string top1_hits;  // [samples] '1' where the top-1 class is the label, '0' elsewhere, in scoring order
  double top1_frac() const { return samples ? double(top1) / double(samples) : 0.0; }
  double top5_frac() const { return samples ? double(top5) / double(samples) : 0.0; }
  double mean_loss() const { return samples > nonfinite ? loss_sum / double(samples - nonfinite) : 0.0; }
};

// Adds one batch: logits [N, C] f32, labels [N] (in the model's label space).
void score_logits(const Tensor& logits, const std::vector<int>& labels, EvalTotals& t);

// Runs the model (eval mode, no grad) over `indices` of the folder in batches, images preprocessed with
// `preset`; `progress(done, total)` is called after every batch. Any models::Model taking images: the autograd
// CNNs or a natively compiled one (native::CompiledModel).
EvalTotals evaluate_images(models::Model& model, data::Preset preset, const data::ImageNetFolder& folder,
                           const std::vector<int64_t>& indices, int64_t batch,
                           const std::function<void(int64_t, int64_t, const EvalTotals&)>& progress = {});

}  // namespace mpq::quant
