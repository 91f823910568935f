// The deployable model file (`mpq export`, extension .mpq): ONE safetensors file (models/io/safetensors.h)
// holding a model's weights at the precisions of one assignment -- exactly the numbers the in-process native
// engine packs (models/native/native.h), so that a loaded file runs bit for bit like
// native::compile(model, assignment) with the same CompileOptions. Loading needs neither the fp32 weights
// nor calibration data.
//
// Tensors (little-endian, row-major). W is a quantizable layer's weight name (QuantLayer::weight, e.g.
// "layer1.0.conv1.weight"), B its bias name (W's module + ".bias"); O output channels / rows, K the rest:
//   fp32 layer    W  F32  the model's weight shape (convs [O, C/groups, KH, KW] with batch norm folded in,
//                         linears [O, K], embedding tables [V, D])
//   fp16 / bf16   W  F16 / BF16, the same shape: the f32 weight rounded to nearest even
//   int8          W  I8 [O, K]: codes in PyTorch order (conv column k = (c * KH + kh) * KW + kw), |q| <= 127;
//                 W.scale F32 [O, 1]; weight = q * scale, one f32 multiply
//   int4          W  U8 [O, ceil(K / 2)]: two's-complement codes, element 2i in the LOW nibble of byte i, each
//                 row starting on a byte, |q| <= 7; W.scale F32 [O, K / G] (G = the layer's weight_group in
//                 quant_config, or K when it is 0)
//   conv / linear B  F32 [O]: the bias the engine adds -- the folded batch norm's, plus the rounding's bias
//                 correction of an int8 / int4 layer with a rounded record (QuantizedWeight::bias_correction)
//   BERT's other parameters (token-type embeddings, layer norms): F32 under their Hugging Face names
// Integer codes are the assignment's rounded records (LayerQuant::weights) when present, else round-to-nearest
// of the (folded) f32 weights by models/native/weight_codes.h -- the one function both engines pack through.
//
// Metadata (__metadata__, all strings):
//   format "mpq-model"; version "1"; model "resnet50" | "mobilenetv2" | "bert";
//   architecture  JSON: CNNs {"layout": "keras" | "torchvision" | "tflite", "batch_norm": "folded"},
//                 BERT its config.json fields (models/bert.h BertConfig::to_json);
//   preprocessing data::preset_name of a CNN ("keras_caffe", "tflite_mobilenet", "torchvision"), or
//                 "wordpiece" for BERT (token ids in; the vocabulary in "vocab" when stored);
//   quant_config  the quant config JSON (quant/config.h) of the assignment: every layer's precision, the
//                 uint8 scale / zero point of each activation operand of int8 / int4 layers, and int4 groups
//                 as the codes use them (a group that does not divide K is written as 0, per channel);
//   vocab         (BERT, optional) vocab.txt, one token per line.
// Size: the tensors are what models/native/model_file.h counts per layer (stored_layer_bytes: the search's
// --objective bytes) minus the 8 bytes per activation operand, which live in quant_config; plus the
// safetensors header with this metadata.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/precision.h"
#include "models/bert.h"
#include "models/model.h"
#include "models/native/native.h"
#include "quant/config.h"

namespace mpq::deploy {

inline constexpr const char* kModelFileFormat = "mpq-model";
inline constexpr int kModelFileVersion = 1;

struct ExportOptions {
  std::string vocab;                        // BERT: vocab.txt text to store ("" : none)
  std::optional<quant::WeightsId> weights;  // identity of the source weights, written into quant_config
};

struct ExportSummary {
  uint64_t file_bytes = 0;    // the whole file
  uint64_t header_bytes = 0;  // 8-byte length + JSON header (tensor table and metadata)
  uint64_t tensor_bytes = 0;  // the data section
  int64_t stored_bytes = 0;   // models/native/model_file.h count of this assignment (what the search reports)
};

// The file's bytes for model `m` at assignment `a` (every quantizable layer; missing ones are fp32). int8 /
// int4 layers need their activation parameters (LayerQuant::act). Errors name the layer.
std::vector<uint8_t> serialize_model_file(models::Model& m, const Assignment& a, const ExportOptions& opt,
                                          ExportSummary* summary = nullptr);
// The same, written atomically (core/file_io.h write_file_atomic).
ExportSummary write_model_file(const std::string& path, models::Model& m, const Assignment& a,
                               const ExportOptions& opt);

// stored_layer_bytes (models/native/model_file.h) summed over the layers of `m` at assignment `a`, each int4
// layer at its own group, plus what a model stores whatever the assignment (BERT's embeddings' companions:
// token types and layer norms at f32) -- the quant BytesTable figure for uniform groups.
int64_t stored_bytes(models::Model& m, const Assignment& a);

// What a model file says about itself.
struct ModelFileInfo {
  std::string path;
  std::string model;          // "resnet50" | "mobilenetv2" | "bert"
  std::string layout;         // CNNs: the weight layout; "" for BERT
  std::string preprocessing;  // data::preset_name, or "wordpiece"
  std::optional<models::BertConfig> bert;
  std::string vocab;  // BERT vocab.txt text, "" when not stored
  int64_t classes = 0;
  quant::QuantConfig config;  // precisions, activation parameters, groups (no records)
  uint64_t file_bytes = 0, header_bytes = 0;
  // e.g. "int8 x52, fp16 x1" (counts per precision, in the order fp32, fp16, bf16, int8, int4)
  std::string precision_summary() const;
};

// A loaded model file: compiled for the native engine, runnable like native::compile's result
// (model->native()) and usable as a models::Model by the task evaluators (forward = the native run).
struct LoadedModel {
  ModelFileInfo info;
  std::unique_ptr<native::CompiledModel> model;
  native::NativeModel& native() { return model->native(); }
};

// Reads `path` by the rules of core/file_io.h (regular file, at most kMaxWeightsFileBytes, size checked before
// allocating) and compiles it with `opt` (default: no autotuning, the same figures every run). A truncated file,
// another format or version, metadata that disagrees with the tensors (a missing, extra or mis-shaped tensor,
// a dtype that is not the layer's precision), or codes / scales out of range are refused with an mpq::Error
// naming the file and the field or tensor.
LoadedModel load_model_file(const std::string& path,
                            const native::CompileOptions& opt = native::CompileOptions::reproducible());
// The same on the file's bytes; `file` names the source in messages.
LoadedModel parse_model_file(std::span<const uint8_t> bytes, const std::string& file,
                             const native::CompileOptions& opt = native::CompileOptions::reproducible());

// The batch-1 latency input of the file's model: a formula image [1, 3, 224, 224], or `seq` token ids
// (0: the BERT configuration's sequence length).
models::Batch latency_input(const ModelFileInfo& info, int64_t seq = 0);

}  // namespace mpq::deploy
