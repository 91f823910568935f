// Model loading by name. The weights format follows from the file: *.safetensors (torchvision / Hugging
// Face names; BERT reads config.json beside it), model.json (TF.js layers: Keras ResNet50),
// *.tflite (MobileNetV2, dequantized to f32).
#pragma once
#include <memory>
#include <string>

#include "models/model.h"

namespace mpq::models {

// model: "resnet50", "mobilenetv2" or "bert". Throws mpq::Error naming the file on any problem.
std::unique_ptr<Model> load_model(const std::string& model, const std::string& weights_path);

// Implemented by each network's file.
std::unique_ptr<Model> load_resnet50(const std::string& weights_path);
std::unique_ptr<Model> load_mobilenetv2(const std::string& weights_path);
std::unique_ptr<Model> load_bert(const std::string& weights_path);

}  // namespace mpq::models
