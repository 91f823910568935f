// Stored bytes of a configuration (models/native/model_file.h, quant/search.h BytesTable), counted by hand
// from the layer shapes and the model's tensors.
#include <doctest/doctest.h>

#include "core/error.h"
#include "models/native/model_file.h"
#include "models/zoo.h"
#include "quant/search.h"

using namespace mpq;
using namespace mpq::quant;

TEST_CASE("stored bytes: every precision of a conv, an odd-K int4 row, groups and a weightless matmul") {
  const native::StoredLayer conv{8, 9, true, 1};  // depthwise-like: O 8, K 9
  CHECK(native::stored_layer_bytes(conv, Precision::fp32, 0) == 8 * 9 * 4 + 8 * 4);
  CHECK(native::stored_layer_bytes(conv, Precision::fp16, 0) == 8 * 9 * 2 + 8 * 4);
  CHECK(native::stored_layer_bytes(conv, Precision::bf16, 0) == 8 * 9 * 2 + 8 * 4);
  CHECK(native::stored_layer_bytes(conv, Precision::int8, 0) == 8 * 9 + 8 * 4 + 8 * 4 + 8);
  // int4, K 9: 5 bytes per row (rows start on a byte), one scale per row; group 32 does not divide 9
  CHECK(native::stored_layer_bytes(conv, Precision::int4, 0) == 8 * 5 + 8 * 4 + 8 * 4 + 8);
  CHECK(native::stored_layer_bytes(conv, Precision::int4, 32) == 8 * 5 + 8 * 4 + 8 * 4 + 8);
  const native::StoredLayer lin{16, 256, true, 1};
  CHECK(native::stored_layer_bytes(lin, Precision::int4, 64) == 16 * 128 + 16 * 4 * 4 + 16 * 4 + 8);
  const native::StoredLayer qk{0, 0, false, 2};  // attention matmul: only its two operands' parameters
  CHECK(native::stored_layer_bytes(qk, Precision::int8, 0) == 16);
  CHECK(native::stored_layer_bytes(qk, Precision::fp16, 0) == 0);
}

TEST_CASE("bytes table: the committed BERT, layer by layer and the tensors outside the layers") {
  auto m = models::load_model("bert", std::string(MPQ_SOURCE_DIR) + "/models/weights/bert-sst2/model.safetensors");
  const BytesTable bt = bytes_table(*m, 0);
  const auto layers = m->quant_layers();
  REQUIRE(bt.layer.size() == layers.size());
  int64_t all = 0, in_layers = 0;
  std::map<std::string, int64_t> numel;
  for (auto& [name, t] : m->named_tensors()) {
    numel[name] = t->numel();
    all += t->numel();
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].weight.empty()) {  // QK^T / PV: two operands, no weights
      CHECK(bt.layer[i].at(Precision::int8) == 16);
      CHECK(bt.layer[i].at(Precision::fp32) == 0);
      continue;
    }
    if (layers[i].kind == models::LayerKind::embedding) {  // [V, D] rows: codes + a scale per row, no bias
      const double w = double(numel[layers[i].weight]);
      in_layers += numel[layers[i].weight];
      CHECK(bt.layer[i].at(Precision::fp32) == 4 * w);
      CHECK(bt.layer[i].at(Precision::int4) == w / 2 + 4 * (w / 128));  // D = 128, one scale per row
      continue;
    }
    const std::string bias = layers[i].weight.substr(0, layers[i].weight.size() - 6) + "bias";
    REQUIRE(numel.count(bias));
    in_layers += numel[layers[i].weight] + numel[bias];
    const double w = double(numel[layers[i].weight]), o = double(numel[bias]);
    CHECK(bt.layer[i].at(Precision::fp32) == 4 * w + 4 * o);
    CHECK(bt.layer[i].at(Precision::int8) == w + 4 * o + 4 * o + 8);
  }
  // everything else (embeddings, layer norms) is stored as f32 whatever the configuration
  CHECK(bt.fixed == doctest::Approx(4.0 * double(all - in_layers)));
  CHECK(bt.fixed > 0);
}

TEST_CASE("bytes table: MobileNetV2 stores nothing outside its layers (batch norms fold into the convs)") {
  auto m = models::load_model("mobilenetv2",
                              std::string(MPQ_SHARED_DATA) + "/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite");
  const BytesTable bt = bytes_table(*m, 32);
  CHECK(bt.fixed == 0);
  double int8 = 0, fp32 = 0;
  std::map<std::string, int64_t> numel;
  for (auto& [name, t] : m->named_tensors()) numel[name] = t->numel();
  for (const auto& l : m->quant_layers()) {
    const int64_t w = numel.at(l.weight);
    const int64_t o = l.conv.in_channels ? l.conv.out_channels : 1001;  // the classifier is a 1x1 conv here too
    fp32 += 4.0 * double(w) + 4.0 * double(o);
    int8 += double(w) + 8.0 * double(o) + 8;
  }
  const size_t n = bt.layer.size();
  CHECK(bt(std::vector<Precision>(n, Precision::fp32)) == doctest::Approx(fp32));
  CHECK(bt(std::vector<Precision>(n, Precision::int8)) == doctest::Approx(int8));
  // group-32 scales cost MobileNetV2 (many narrow layers) more than per-channel ones
  const double int4_g32 = bt(std::vector<Precision>(n, Precision::int4));
  const double int4_pc = bytes_table(*m, 0)(std::vector<Precision>(n, Precision::int4));
  CHECK(int4_pc < int4_g32);
  CHECK(int4_g32 < int8);
  MESSAGE("MobileNetV2 stored bytes: int8 " << int8 << ", int4 per channel " << int4_pc << " (" << int4_pc / int8
                                            << "x), int4 group 32 " << int4_g32 << " (" << int4_g32 / int8 << "x)");
}
