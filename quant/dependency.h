// Inter-layer dependencies measured with the real fake-quantizers (weights AND activations).
//
//   dL(S)  = L(layers in S at `precision`, every other layer at `base`) - L(all at `base`)
//   dL_i   = dL({i})                                   (single effect)
//   I_ij   = dL({i, j}) - dL_i - dL_j                  (pairwise interaction)
// L is the mean task loss on the calibration split. Pairs are taken from each layer's neighbourhood:
// producer / consumer edges, residual partners, a window of k layers in topological (list) order, or all
// pairs. Cost: 1 + N + |pairs| evaluations of the loss; the result states the count and the seconds.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "models/model.h"
#include "quant/fake_quant.h"
#include "quant/task.h"

namespace mpq::quant {

struct DependencyOptions {
  Precision precision = Precision::int8;    // what the probed layers are lowered to
  Precision base = Precision::fp16;         // every other layer (the search's starting point)
  bool edges = true;                        // producer / consumer pairs
  bool residual = true;                     // residual partners
  int window = 0;                           // also pairs (i, j) with 0 < j - i <= window in list order
  bool all_pairs = false;                   // every pair (overrides the above)
  int64_t int4_group = 0;                   // weight group for int4 probes
  const RoundedWeights* rounded = nullptr;  // the probes' rounded weights (quant/rounding.h), or round-to-nearest
  // L: cross-entropy against the fp32 model's own output distribution (soft labels; docs/method.md's label-free
  // loss) or against the dataset labels. Distillation is the default: on MobileNetV2 int4 the labelled CE
  // on 16 calibration images went DOWN by 0.10 when the first depthwise conv was quantized (dL < 0, ranked
  // least sensitive) while search-split top-1 fell 12 points; CE to the fp32 outputs is
  // KL(p_fp32 || q) + H(p_fp32), so it grows with any change of the output distribution.
  bool distill = true;
};

struct PairEffect {
  int i = 0, j = 0;        // layer indices, i < j
  double dl_pair = 0;      // dL({i, j})
  double interaction = 0;  // I_ij
};

struct DependencyResult {
  Precision precision = Precision::int8, base = Precision::fp16;
  std::vector<std::string> layers;  // [N]
  double base_loss = 0;
  std::vector<double> single;  // [N] dL_i
  std::vector<PairEffect> pairs;
  int64_t evaluations = 0;
  double seconds = 0;
  // [N] 1/2 sum_j I_ij (each measured pair counts for both of its layers)
  std::vector<double> half_interaction_sum() const;
};

// The neighbourhood pairs (i < j, unique, sorted) of the layer list under the options.
std::vector<std::pair<int, int>> dependency_pairs(const std::vector<models::QuantLayer>& layers,
                                                  const DependencyOptions& opt);

// Loss of the configuration "layers in `set` at opt.precision, others at opt.base".
using SetLoss = std::function<double(const std::vector<int>& set)>;

// progress(done, total) after every evaluation (optional).
DependencyResult measure_dependencies(const std::vector<models::QuantLayer>& layers, const SetLoss& loss,
                                      const DependencyOptions& opt,
                                      const std::function<void(int64_t, int64_t)>& progress = {});

// The real SetLoss: FakeQuantHook on `m`, mean loss over `indices` (see DependencyOptions::distill; the fp32
// reference outputs are computed once, with no hook, when the SetLoss is built). `m`, `ev` and `calib` are held
// by reference and must outlive the returned function.
SetLoss model_set_loss(models::Model& m, TaskEvaluator& ev, const std::vector<int64_t>& indices,
                       const Calibration& calib, const DependencyOptions& opt);

}  // namespace mpq::quant
