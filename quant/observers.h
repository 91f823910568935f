// Activation range observers and the calibration pass.
//
// Activations are quantized asymmetric uint8 per tensor:
//   q = clamp(nearbyint(x / s) + zp, 0, 255)   (nearbyint: default FE_TONEAREST, round half to even)
//   x^ = (q - zp) * s
// The observed range [lo, hi] is first widened to contain 0 (so that 0 is exact, as padding needs), then
// s = (hi - lo) / 255 and zp = clamp(nearbyint(-lo / s), 0, 255); an all-zero range gives s = 1, zp = 0.
//
// Observers (all on the same calibration data):
//   minmax     : exact running min / max over every element seen;
//   percentile : the p-th and (100-p)-th percentiles (default p = 99.99) of a deterministic subsample;
//   mse        : lo = a * min, hi = a * max for a on a grid of 100 values in (0, 1], the a minimising the
//                plain squared quantization error sum (x - x^)^2 over the subsample.
// Per-layer choice ("pick per layer by the smallest output error", docs/method.md): for a conv / linear the
// output error of an input error e is ||W * e||^2; under the approximation that the elements of e are
// uncorrelated (zero-mean rounding noise) E||W * e||^2 = sum_c ||W_c||^2 * sum_{i in channel c} e_i^2, W_c
// the weights that read input channel c. The calibration pass picks the observer minimising this
// channel-weighted error over the subsample (the weights are the fp32 weights the hook saw). Operands with
// no weight (attention matmuls) fall back to the plain squared error.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/enum_table.h"
#include "core/precision.h"
#include "models/model.h"

namespace mpq::quant {

ActQuantParams act_params_from_range(float lo, float hi);
// Fake-quant (quantize then dequantize) of an activation tensor, any shape; returns a fresh f32 tensor.
Tensor fake_quant_act(const Tensor& x, const ActQuantParams& p);
float fake_quant_act_value(float x, const ActQuantParams& p);

enum class ObserverKind { minmax, percentile, mse };
inline constexpr std::array<EnumName<ObserverKind>, 3> kObserverNames{
    {{ObserverKind::minmax, "minmax"}, {ObserverKind::percentile, "percentile"}, {ObserverKind::mse, "mse"}}};
inline const char* observer_name(ObserverKind k) { return enum_name(kObserverNames, k); }
inline ObserverKind parse_observer(const std::string& s) { return parse_enum(kObserverNames, s, "observer"); }

// Statistics of one activation operand over the calibration batches.
struct ActivationStats {
  double min = 0, max = 0;       // exact over all elements seen
  int64_t seen = 0;              // elements seen
  std::vector<float> sample;     // [S] deterministic subsample of the values
  std::vector<int32_t> channel;  // [S] input channel of each sampled value (-1: unknown)
  int64_t channels = 0;          // C of the operand (dim 1 of NCHW, else the last dim)
};

struct ObserverOptions {
  double percentile = 99.99;         // percent
  int grid = 100;                    // mse: number of clip fractions a in (0, 1]
  int64_t sample_per_batch = 16384;  // values sampled per operand per call
  int64_t sample_cap = 262144;       // total sampled values per operand
};

// Range of one observer on the stats.
ActQuantParams observe(const ActivationStats& st, ObserverKind kind, const ObserverOptions& opt = {});
// sum_i w[channel_i] (x_i - x^_i)^2 over the subsample (w empty: all weights 1).
double weighted_quant_error(const ActivationStats& st, const ActQuantParams& p,
                            const std::vector<double>& channel_weight);
// ||W_c||^2 per input channel c of weight w: conv [O, C/g, KH, KW] with `channels` = C (groups = C / (C/g)),
// linear [O, C]. Returns [C].
std::vector<double> input_channel_weights(const Tensor& w, int64_t channels);

// The calibration result of one layer input (operand 0 of conv / linear; 0 and 1 of attention matmuls).
struct CalibratedInput {
  ActQuantParams params;  // of the chosen observer
  ObserverKind chosen = ObserverKind::minmax;
  std::map<std::string, double> error;  // observer name -> channel-weighted error of its range
};
// key: layer name, then operand index.
using Calibration = std::map<std::string, std::map<int, CalibratedInput>>;

// A LayerHook that passes everything through unchanged and records activation statistics and (once) each
// layer's weight. Deterministic: the subsample positions come from a counter-seeded splitmix64 stream.
class CalibrationHook : public models::LayerHook {
 public:
  explicit CalibrationHook(ObserverOptions opt = {}) : opt_(opt) {}
  Tensor on_weight(const std::string& layer, const Tensor& w) override;
  Tensor on_input(const std::string& layer, int operand, const Tensor& x) override;
  // Runs every observer on every recorded operand and picks per operand the smallest channel-weighted error.
  Calibration finish() const;
  const std::map<std::string, std::map<int, ActivationStats>>& stats() const { return stats_; }

 private:
  ObserverOptions opt_;
  std::map<std::string, std::map<int, ActivationStats>> stats_;
  std::map<std::string, Tensor> weights_;  // layer -> fp32 weight as first seen (a clone)
  uint64_t calls_ = 0;
};

}  // namespace mpq::quant
