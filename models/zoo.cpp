#include "models/zoo.h"

#include "core/error.h"
#include "models/bert.h"
#include "models/cnn_common.h"
#include "models/mobilenetv2.h"
#include "models/resnet50.h"

namespace mpq::models {

std::unique_ptr<Model> load_model(const std::string& model, const std::string& weights_path) {
  if (model == "resnet50") return load_resnet50(weights_path);
  if (model == "mobilenetv2") return load_mobilenetv2(weights_path);
  if (model == "bert") return load_bert(weights_path);
  fail("unknown model '{}' (expected resnet50, mobilenetv2 or bert)", model);
}

std::unique_ptr<Model> default_model(const std::string& name) {
  if (name == "resnet50" || name == "mobilenetv2") {
    std::unique_ptr<CnnModel> m =
        name == "resnet50" ? make_resnet50(ResNetLayout::torchvision) : make_mobilenetv2(MobileNetLayout::torchvision);
    formula_init(*m);
    return m;
  }
  if (name == "bert") {
    BertConfig c;  // BERT-base
    c.vocab_size = 30522;
    c.hidden = 768;
    c.layers = 12;
    c.heads = 12;
    c.ffn = 3072;
    auto m = std::make_unique<Bert>(c);
    m->init_random(0);
    return m;
  }
  fail("unknown model '{}' (expected resnet50, mobilenetv2 or bert)", name);
}

Batch latency_input(const Model& m, int64_t seq) {
  Batch batch;
  if (dynamic_cast<const CnnModel*>(&m) != nullptr) {
    batch.images = formula_input(1, 224, 224);  // [1, 3, 224, 224]
    return batch;
  }
  const auto* bert = dynamic_cast<const Bert*>(&m);
  check(bert != nullptr, "latency input: model '{}' is neither a CNN nor BERT", m.name());
  return bert_latency_input(bert->config(), seq);
}

Batch bert_latency_input(const BertConfig& c, int64_t seq) {
  Batch batch;
  if (seq == 0) seq = c.seq_len;
  check(seq > 0 && seq <= c.max_pos, "--seq must be in [1, {}] (max_position_embeddings), got {}", c.max_pos, seq);
  batch.seq_len = seq;
  for (int64_t i = 0; i < seq; ++i) {
    batch.ids.push_back(int32_t(i == 0 ? 2 : 5 + (i * 7919) % 1000));  // [1, L], no padding
    batch.mask.push_back(1);
  }
  return batch;
}

}  // namespace mpq::models
