// Weight rounding for the integer precisions, as the search, eval, bench and profile use it: one call that
// turns calibration samples into a rounded-weight record per weight layer and bit width (core/precision.h
// RoundedWeights), which make_assignment attaches to every int8 / int4 layer. The simulation and both native
// engines then run those exact numbers (core/quantized_weight.h).
//
//   nearest : no records; each layer rounds w / s to the nearest code at compile time (ops/kernels/
//             quantize_weights.h), s = max|w| / qmax per output channel or group.
//   gptq    : second-order rounding from the layer's input statistics (quant/gptq.h): the proxy Hessian
//             H = X X^T / n of the layer's inputs on the calibration samples (inputs uint8-quantized as the
//             layer receives them; dampened 1 %, or 100 % at 4 bits for a layer with fewer calibration rows
//             than inputs), GPTQ column by column with error feedback (at 4 bits in act order per
//             channel; with group scales each row in both orders, the one of least output error kept), an
//             output-error scale search, the least-squares rescale of each channel, bias correction, and
//             exhaustive floor / ceil rounding of depthwise rows (K = 9). One capture serves both bit widths;
//             the statistics of every layer come from the network with float weights, so a record does not
//             depend on the precisions of the other layers (the search can mix them freely).
// Embedding tables have no input statistics: they keep round-to-nearest in both methods.
#pragma once
#include <array>
#include <functional>
#include <string>
#include <vector>

#include "core/enum_table.h"
#include "core/precision.h"
#include "models/model.h"
#include "quant/cache.h"
#include "quant/observers.h"
#include "quant/task.h"

namespace mpq::quant {

enum class WeightRounding { nearest, gptq };
inline constexpr std::array<EnumName<WeightRounding>, 2> kWeightRoundingNames{
    {{WeightRounding::nearest, "nearest"}, {WeightRounding::gptq, "gptq"}}};

struct RoundingRequest {
  WeightRounding method = WeightRounding::gptq;
  int64_t int4_group = 0;  // 0: per output channel; else 32 / 64 / 128 (layers whose K it does not divide: per
                           // channel, listed in RoundingReport::notes)
  // also round the int8 records (else int8 layers round to nearest). Off by default: at 8 bits the recipe
  // measured worse than nearest (ResNet50 80.29 % vs 81.23 %, MobileNetV2 78.50 % vs 78.75 % on 1172 images):
  // its bias correction and scale search fit the 128 calibration images more than they fix an 8-bit error.
  bool int8 = false;
  // conv output positions kept per calibration sample for the statistics (0: all). 256 of MobileNetV2's
  // 12544 stem positions: the Hessians of 128 images then hold 32 K rows per layer, and capture takes
  // seconds instead of minutes (measured in docs/method.md).
  int64_t max_positions = 256;
  void validate() const;
};

struct RoundingReport {
  double capture_seconds = 0, rounding_seconds = 0;
  std::map<std::string, double> output_error;  // "int4/<layer>", "int8/<layer>": mean layer output error
  std::vector<std::string> notes;              // per-layer fallbacks (group -> per channel)
};

// Rounds every weight layer of `m` (not embedding tables) on the calibration batches `calib` (e.g.
// task_batches of quant/gptq_model.h), with the activation parameters `act` applied to every layer input.
// nearest: returns empty records.
RoundedWeights round_weights(models::Model& m, const std::vector<models::Batch>& calib, const Calibration& act,
                             const RoundingRequest& req, RoundingReport* report = nullptr,
                             const std::function<void(const std::string&)>& log = {});

// The same through the analysis cache: `inputs` (analysis_inputs of the model, weights, calib indices and
// settings; the caller states which samples `calib` holds) keys a safetensors file DIR/rounding-KEY.safetensors holding
// every record; a stale, malformed or foreign entry is recomputed (with a line to `log`). *hit tells whether the
// records came from the cache.
RoundedWeights cached_round_weights(const AnalysisCache& cache, const nlohmann::json& inputs, models::Model& m,
                                    const std::vector<models::Batch>& calib, const Calibration& act,
                                    const RoundingRequest& req, bool* hit = nullptr,
                                    const std::function<void(const std::string&)>& log = {});

// The settings part of a cache key for `req` (method, group, bit widths, capture settings, recipe version).
nlohmann::json rounding_settings(const RoundingRequest& req);

// Records <-> safetensors: tensors "int4/<layer>/q" (I8 [O, K]), ".../scale" (F32 [O, K / G]),
// ".../bias_correction" (F32 [O], when present); metadata "<bits>/<layer>" = "group". Reading validates every
// record and names `file` and the tensor in errors.
std::vector<uint8_t> serialize_rounded(const RoundedWeights& r, const std::map<std::string, std::string>& metadata);
RoundedWeights parse_rounded(const std::vector<uint8_t>& bytes, const std::string& file,
                             std::map<std::string, std::string>* metadata = nullptr);

}  // namespace mpq::quant
