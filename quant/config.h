// The quantization configuration file the runtime loads (JSON):
//   {"format": "mpq-quant-config", "version": 1,
//    "model": "mobilenetv2",
//    "weights": {"path", "size", "mtime_ns", "head_tail_fnv1a64"},        (optional: identity of the weights)
//    "layers": [{"name": "features.1.conv.0.0", "precision": "int8", "weight_group": 0,
//                "inputs": [{"operand": 0, "scale": 0.0235, "zero_point": 0}]}, ...]}
// One entry per quantizable layer, in the model's layer order. int8 / int4 layers carry the uint8
// per-tensor scale and zero point of every input operand; weight_group (int4 only) is 0 (per output
// channel), 32, 64 or 128. Loading checks everything against the model and names the offending field.
// When the int8 / int4 weights were not rounded to nearest (quant/rounding.h), the records sit in a
// safetensors file beside the config, named by "rounded_weights": {"file": "config.rounded.safetensors"}
// (a plain name inside the config's folder); every record must belong to a layer of that bit width.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/model.h"
#include "quant/cache.h"
#include "quant/fake_quant.h"

namespace mpq::quant {

// Accepted activation scales (the real value of one uint8 step). A calibrated range of 1e-6 .. 1e6 gives
// scales of about 4e-9 .. 4e3; the bounds leave decades beyond that while keeping 1 / scale, scale times any
// weight scale, and 255 * scale normal finite floats (a denormal such as 1e-45 made oneDNN fail later,
// naming no file or layer).
inline constexpr float kMinActScale = 1e-20f;
inline constexpr float kMaxActScale = 1e20f;

struct QuantConfig {
  std::string model;                 // Model::name()
  std::optional<WeightsId> weights;  // identity of the weights the scales were calibrated on
  Assignment layers;                 // every quantizable layer
  // the records file named by the config ("" when none); load_config attaches its records to `layers`,
  // parse_config / config_from_json only read the name
  std::string rounded_file;
};

// Serialises in the order of `layers` (the model's quant_layers()); every layer must be in cfg.layers. Layers
// with rounded-weight records also write PATH-without-.json + ".rounded.safetensors" (atomically, first).
void save_config(const std::string& path, const QuantConfig& cfg, const std::vector<models::QuantLayer>& layers);

// Parses and validates against the model: format, model name, every layer known and present exactly once,
// precision names, scales / zero points / groups in range, and (when `expect` is given and the file states
// its weights) the weights content identity (size + head/tail hash; the path may differ).
QuantConfig load_config(const std::string& path, const std::string& model_name,
                        const std::vector<models::QuantLayer>& layers, const WeightsId* expect = nullptr);

// Counterparts on file contents and on an in-memory JSON document (`what` names the source in messages).
QuantConfig parse_config(std::string_view text, const std::string& what, const std::string& model_name,
                         const std::vector<models::QuantLayer>& layers, const WeightsId* expect = nullptr);
nlohmann::json config_to_json(const QuantConfig& cfg, const std::vector<models::QuantLayer>& layers);
QuantConfig config_from_json(const nlohmann::json& j, const std::string& what, const std::string& model_name,
                             const std::vector<models::QuantLayer>& layers, const WeightsId* expect = nullptr);

}  // namespace mpq::quant
