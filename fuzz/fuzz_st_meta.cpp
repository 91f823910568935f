// libFuzzer target: how the models interpret a parsed safetensors file: ResNet50's layout / bn_eps metadata,
// MobileNetV2's layout, a CNN conv + BN unit and a linear unit loading their tensors (names, shapes, float
// dtypes), and a micro BERT (hidden 4, one layer) loading its whole state. Only mpq::Error may escape.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "core/error.h"
#include "models/bert.h"
#include "models/cnn_common.h"
#include "models/io/safetensors.h"
#include "models/mobilenetv2.h"
#include "models/resnet50.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mpq;
  static models::Bert bert(models::BertConfig::parse(
      R"({"vocab_size": 4, "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 1,
          "intermediate_size": 4, "max_position_embeddings": 4, "type_vocab_size": 1, "num_labels": 2})",
      "fuzz micro BERT"));
  static models::ConvUnit conv(models::ConvSpec{"conv1", "bn1", 3, 4, 3, 2, 1, true});
  static models::LinearUnit fc("fc", 4, 3);
  io::SafetensorsFile f;
  try {
    f = io::parse_safetensors(std::span(data, size), "fuzz.safetensors");
  } catch (const Error&) {
    return 0;
  }
  try {
    const models::ResNetWeightsMeta m = models::resnet50_safetensors_meta(f, "fuzz.safetensors");
    if (!(m.bn_eps >= models::kMinBnEps && m.bn_eps <= models::kMaxBnEps)) std::abort();
  } catch (const Error&) {
  }
  try {
    (void)models::mobilenetv2_safetensors_layout(f, "fuzz.safetensors");
  } catch (const Error&) {
  }
  try {
    conv.load(f.tensors, "fuzz.safetensors");
    if (conv.weight.dtype() != DType::f32 || conv.running_var.dtype() != DType::f32) std::abort();
  } catch (const Error&) {
  }
  try {
    fc.load(f.tensors, "fuzz.safetensors");
  } catch (const Error&) {
  }
  try {
    bert.load_state(f.tensors, "fuzz.safetensors");
  } catch (const Error&) {
  }
  return 0;
}
