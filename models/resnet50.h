// ResNet50 in two layouts, both with torchvision parameter names:
//   torchvision v1.5: stride on the 3x3 conv of a down-sampling bottleneck, no conv biases, BN eps 1e-5,
//                     ImageNet mean/std preprocessing (weights: *.safetensors with torchvision names);
//   keras (Caffe v1): stride on the FIRST 1x1 conv, conv biases ("layer1.0.conv1.bias", ...), BN eps from the
//                     Keras layer config (0.001), Caffe BGR mean-subtraction preprocessing (weights: the TF.js
//                     model.json, or a safetensors written by `mpq convert` with metadata {"layout": "keras"}).
// A safetensors without layout metadata is Keras-layout when it holds "conv1.bias", torchvision otherwise.
// Forward: [N, 3, H, W] -> logits [N, 1000] (adaptive global average pool, so any H, W >= 32 works).
#pragma once
#include <memory>
#include <string>

#include "models/cnn_common.h"
#include "models/io/safetensors.h"

namespace mpq::models {

enum class ResNetLayout { torchvision, keras };

// Zero-initialised network (BN stats identity); bn_eps 0 means the layout's default (1e-5 / 1e-3).
std::unique_ptr<CnnModel> make_resnet50(ResNetLayout layout, float bn_eps = 0.f);

// What a safetensors file says about the ResNet50 in it: the layout (metadata "layout", else guessed from
// the presence of conv1.bias) and the BN epsilon (metadata "bn_eps" parsed by parse_bn_eps, else the layout's
// default: 1e-3 keras, 1e-5 torchvision). Throws naming `file` and the field.
struct ResNetWeightsMeta {
  ResNetLayout layout = ResNetLayout::torchvision;
  float bn_eps = 1e-5f;
};
ResNetWeightsMeta resnet50_safetensors_meta(const io::SafetensorsFile& f, const std::string& file);

}  // namespace mpq::models
