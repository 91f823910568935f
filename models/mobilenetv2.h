// MobileNetV2 (width 1.0, ReLU6, inverted residuals), torchvision parameter names, in two layouts:
//   torchvision: conv + BN (eps 1e-5), symmetric k/2 padding, 1000 classes, Linear classifier "classifier.1",
//                ImageNet mean/std preprocessing (weights: *.safetensors);
//   tflite:      the TF1 QAT model mobilenet_v2_1.0_224_quant.tflite dequantized to f32: BN folded (every conv
//                has a bias, no BN), TF SAME padding (asymmetric for stride 2), 1001 classes (0 = background),
//                the classifier 1x1 CONV_2D stored as the linear "classifier.1" [1001, 1280],
//                (x - 128) / 128 RGB preprocessing (weights: *.tflite, or a safetensors written by
//                `mpq convert` with metadata {"layout": "tflite"}; without metadata a safetensors whose
//                "features.0.0.bias" exists is taken as tflite layout).
// Forward: [N, 3, H, W] -> logits [N, classes] (global average pool, so any H, W >= 32 works).
#pragma once
#include <memory>

#include "models/cnn_common.h"
#include "models/io/safetensors.h"
#include "models/io/tflite.h"

namespace mpq::models {

enum class MobileNetLayout { torchvision, tflite };

// Zero-initialised network (BN stats identity).
std::unique_ptr<CnnModel> make_mobilenetv2(MobileNetLayout layout);

// The TF1 quantized MobileNetV2 1.0 224 graph of a parsed TFLite file, dequantized (BN folded, 1001 classes);
// errors name `file` and the operator / tensor.
// The layout a safetensors file's metadata names ("layout"), else guessed from features.0.0.bias (tflite).
MobileNetLayout mobilenetv2_safetensors_layout(const io::SafetensorsFile& f, const std::string& file);

std::unique_ptr<CnnModel> mobilenetv2_from_tflite(const io::TfliteModel& m, const std::string& file);

}  // namespace mpq::models
