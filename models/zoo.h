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

// Deterministic weights for speed measurements only: torchvision ResNet50 / MobileNetV2 with the formula
// weights (models/cnn_common.h), or BERT-base (12 layers, hidden 768, 12 heads, ffn 3072, vocab 30522) with
// HF-style random weights.
std::unique_ptr<Model> default_model(const std::string& name);

// The batch-1 latency input: a formula image [1, 3, 224, 224], or `seq` token ids without padding (0: the
// BERT config's sequence length, 128 for BERT-base, 64 for the committed SST-2 checkpoint).
Batch latency_input(const Model& m, int64_t seq = 0);
// The same token input for a BERT of configuration `c` (seq 0: c.seq_len; checked against max positions).
struct BertConfig;
Batch bert_latency_input(const BertConfig& c, int64_t seq = 0);

// Implemented by each network's file.
std::unique_ptr<Model> load_resnet50(const std::string& weights_path);
std::unique_ptr<Model> load_mobilenetv2(const std::string& weights_path);
std::unique_ptr<Model> load_bert(const std::string& weights_path);

}  // namespace mpq::models
