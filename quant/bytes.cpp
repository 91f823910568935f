// The stored-bytes table of a model (quant/search.h BytesTable), from the deploy format's per-layer count
// (models/native/model_file.h).
#include <set>

#include "core/error.h"
#include "models/cnn_common.h"
#include "models/native/model_file.h"
#include "quant/search.h"

namespace mpq::quant {

BytesTable bytes_table(models::Model& m, int64_t int4_group) {
  std::map<std::string, const Tensor*> tensors;
  for (auto& [name, t] : m.named_tensors()) tensors[name] = t;
  BytesTable bt;
  std::set<std::string> owned;  // tensors a layer stores (weight and bias)
  for (const models::QuantLayer& l : m.quant_layers()) {
    native::StoredLayer s;
    s.operands = models::layer_operands(l.kind);
    if (!l.weight.empty()) {
      auto it = tensors.find(l.weight);
      check(it != tensors.end(), "bytes: layer {} names weight {} that the model lacks", l.name, l.weight);
      const Tensor& w = *it->second;
      s.out = w.size(0);
      s.in = w.numel() / s.out;
      s.bias = l.kind != models::LayerKind::embedding;  // convs: the folded batch norm's bias; linears: their own
      owned.insert(l.weight);
      const std::string stem = l.weight.substr(0, l.weight.rfind('.'));
      owned.insert(stem + ".bias");
    }
    std::map<Precision, double> row;
    for (Precision p : {Precision::fp32, Precision::fp16, Precision::bf16, Precision::int8, Precision::int4})
      row[p] = double(native::stored_layer_bytes(s, p, int4_group));
    bt.layer.push_back(row);
  }
  // CNNs: every other tensor is a batch norm folded into its conv (or a buffer of one); BERT stores the rest
  // (embeddings, layer norms) at f32
  if (dynamic_cast<models::CnnModel*>(&m) == nullptr)
    for (const auto& [name, t] : tensors)
      if (!owned.count(name)) bt.fixed += 4.0 * double(t->numel());
  return bt;
}

}  // namespace mpq::quant
