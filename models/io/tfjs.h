// TensorFlow.js *layers* model reader (model.json + binary weight shards).
//
// model.json: {"format": "layers-model", "modelTopology": {...Keras model JSON...},
//              "weightsManifest": [{"paths": ["group1-shard1of2.bin", ...],
//                                   "weights": [{"name": "conv1/kernel", "shape": [7,7,3,64], "dtype": "float32"}]}]}
// Each group's shards (paths relative to model.json's directory) are concatenated in order and the group's
// weights are sliced from that byte stream back to back, little-endian, row-major (Keras layout: conv kernels
// HWIO [kh, kw, in, out], dense kernels [in, out]). A weight may carry
// "quantization": {"dtype": "uint8"|"uint16", "scale": s, "min": m} (value = q * s + m) or
// {"dtype": "float16"}; these are dequantized to f32 on load.
// modelTopology is either {"model_config": {"class_name", "config": {"layers": [...]}}} (Keras export) or the
// {"class_name", "config"} object itself.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "models/io/common.h"

namespace mpq::io {

struct TfjsLayer {
  std::string class_name;            // "Conv2D", "BatchNormalization", ...
  std::string name;                  // "res2a_branch2a"
  nlohmann::json config;             // the layer's "config" object (strides, padding, epsilon, ...)
  std::vector<std::string> inbound;  // names of the layers feeding this one, in order
};

struct TfjsModel {
  std::string format;       // "layers-model" (may be empty in old exports)
  std::string model_class;  // "Model" / "Functional" / "Sequential"
  std::vector<TfjsLayer> layers;
  std::vector<std::string> input_layers, output_layers;
  TensorMap weights;                                    // manifest order; f32 or i32
  const TfjsLayer* layer(std::string_view name) const;  // nullptr when absent
};

// Returns the bytes of the shard at `path` (relative to model.json's directory); throws mpq::Error if missing.
using TfjsShardLoader = std::function<std::vector<uint8_t>(const std::string& path)>;
// Returns the size in bytes of that shard without reading it (throws like the loader).
using TfjsShardSizer = std::function<uint64_t(const std::string& path)>;

// Shard paths are resolved inside model.json's folder (core/file_io.h resolve_inside: no absolute paths, no
// '..', no symlink leading out). The shards of each manifest group must hold exactly the bytes its weights
// declare: a shard with bytes appended or cut is refused (it would shift every later weight).
TfjsModel read_tfjs(const std::string& model_json_path);
// The same with model.json's text given (the shards are read from the folder of `model_json_path`).
TfjsModel parse_tfjs_in_folder(std::string_view model_json, const std::string& model_json_path);
// `shard_size`, when given, is asked for every shard of a group before any is loaded, so a mismatch is
// refused before allocating; the loaded bytes are checked again either way.
TfjsModel parse_tfjs(std::string_view model_json, std::string_view file, const TfjsShardLoader& load_shard,
                     const TfjsShardSizer& shard_size = nullptr);

}  // namespace mpq::io
