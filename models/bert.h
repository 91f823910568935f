// BERT encoder + sequence-classification head with Hugging Face BertForSequenceClassification semantics.
//
//   embeddings = LayerNorm(word[id] + position[pos] + token_type[0]) -> dropout
//   per layer:  q, k, v = linear(x); scores = q k^T / sqrt(head_dim) + (1 - mask) * -10000  (HF's additive
//               mask value: exp(-10000) underflows to 0 in f32, and it keeps fully padded rows finite)
//               ctx = dropout(softmax(scores)) v;  h = LayerNorm(x + dropout(attention.output.dense(ctx)))
//               x' = LayerNorm(h + dropout(output.dense(gelu_erf(intermediate.dense(h)))))
//   pooler = tanh(dense(x[:, 0])); logits = classifier(dropout(pooler))
//
// Parameters use HF's names (bert.embeddings.word_embeddings.weight, ..., classifier.bias); sizes come from an
// HF config.json beside the weights, the vocabulary from vocab.txt beside them.
// Attention runs as batched matmuls over transposed views of the [B, L, D] projections (no copies except
// the final head merge).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "models/io/common.h"
#include "models/model.h"

namespace mpq::models {

struct BertConfig {
  int64_t vocab_size = 0;
  int64_t hidden = 0;           // hidden_size (D)
  int64_t layers = 0;           // num_hidden_layers
  int64_t heads = 0;            // num_attention_heads (H), D % H == 0
  int64_t ffn = 0;              // intermediate_size (F)
  int64_t max_pos = 512;        // max_position_embeddings
  int64_t type_vocab = 2;       // type_vocab_size
  int64_t num_labels = 2;       // num_labels or len(id2label)
  float ln_eps = 1e-12f;        // layer_norm_eps
  float hidden_dropout = 0.1f;  // hidden_dropout_prob
  float attn_dropout = 0.1f;    // attention_probs_dropout_prob
  int64_t seq_len = 128;        // default sequence length for MAC counts and evaluation ("max_seq_length", ours)

  // Accepted ranges (validate): far above BERT-large (vocab 30522, hidden 1024, 24 layers, ffn 4096, 512
  // positions, 335 M parameters) and small enough that no product of fields overflows and no config can ask
  // for more than 4 GiB of f32 parameters before a weights file is even read.
  static constexpr int64_t kMaxVocab = int64_t(1) << 22;
  static constexpr int64_t kMaxHidden = 16384;
  static constexpr int64_t kMaxLayers = 256;
  static constexpr int64_t kMaxFfn = 65536;
  static constexpr int64_t kMaxPositions = 65536;
  static constexpr int64_t kMaxTypeVocab = 1024;
  static constexpr int64_t kMaxLabels = 65536;
  static constexpr int64_t kMaxParameters = int64_t(1) << 30;

  int64_t head_dim() const { return hidden / heads; }
  // Every field in its accepted range (above; heads <= hidden and divides it, seq_len <= max_pos, ln_eps in
  // (0, 1], dropouts in [0, 1)) and parameter_count() <= kMaxParameters; errors name `file` and the field.
  void validate(const std::string& file) const;
  int64_t parameter_count() const;
  // Parses HF config.json text; errors name `file` and the field.
  static BertConfig from_json(const nlohmann::json& j, const std::string& file);
  static BertConfig parse(std::string_view text, const std::string& file);
  static BertConfig load(const std::string& path);  // regular file of at most kMaxJsonFileBytes
  nlohmann::json to_json() const;                   // HF keys (plus max_seq_length)
  void save(const std::string& path) const;         // atomic (core/file_io.h)
};

struct BertLinear {
  Tensor w;  // [out, in]
  Tensor b;  // [out]
};
struct BertLayerNorm {
  Tensor g;  // [D]
  Tensor b;  // [D]
};
struct BertLayerParams {
  BertLinear q, k, v;     // [D, D] each
  BertLinear attn_out;    // [D, D]
  BertLayerNorm attn_ln;  // [D]
  BertLinear ffn_in;      // [F, D]
  BertLinear ffn_out;     // [D, F]
  BertLayerNorm out_ln;   // [D]
};

// The quantizable embedding tables' layer names (LayerKind::embedding; the tables are their ".weight").
inline constexpr const char* kWordEmbeddings = "bert.embeddings.word_embeddings";
inline constexpr const char* kPositionEmbeddings = "bert.embeddings.position_embeddings";

class Bert : public Model {
 public:
  explicit Bert(BertConfig cfg);  // zero-filled parameters of the configured shapes

  // HF's initialisation: N(0, std) for linears and embeddings (the [PAD]=0 word row zeroed), zero biases,
  // LayerNorm weight 1 and bias 0. Deterministic in `seed`.
  void init_random(uint64_t seed, float std = 0.02f);
  // Copies every parameter from `map` (f32/f16/bf16 accepted, converted to f32); names and shapes are
  // checked, errors name `file` and the tensor. Old "LayerNorm.gamma/beta" names are accepted too.
  void load_state(const io::TensorMap& map, const std::string& file);
  io::TensorMap state() const;  // f32 copies by HF name, in named_tensors() order

  const BertConfig& config() const { return cfg_; }
  void set_dropout_seed(uint64_t s) { dropout_seed_ = s; }

  // Encoder output [N, L, D] (training enables dropout).
  Tensor encode(const Batch& batch, bool training);

  std::string name() const override { return "bert"; }
  Tensor forward(const Batch& batch, bool training = false) override;  // logits [N, num_labels]
  std::vector<std::pair<std::string, Tensor*>> named_tensors() override;
  std::vector<std::pair<std::string, Tensor*>> parameters() override { return named_tensors(); }
  std::vector<QuantLayer> quant_layers() const override;
  int64_t num_classes() const override { return cfg_.num_labels; }

 private:
  Tensor attention(const Tensor& x, const BertLayerParams& p, const std::string& prefix, const Tensor& mask_add,
                   bool training);
  // linear / matmul through the quantization hook (models/model.h LayerHook) when one is set
  Tensor qlinear(const std::string& layer, const Tensor& x, const BertLinear& l);
  Tensor qmatmul(const std::string& layer, const Tensor& a, const Tensor& b);
  uint64_t next_seed() { return dropout_seed_++ * 0x9E3779B97F4A7C15ull + 1; }

  BertConfig cfg_;
  uint64_t dropout_seed_ = 1;
  Tensor word_emb_;       // [V, D]
  Tensor pos_emb_;        // [P, D]
  Tensor type_emb_;       // [T, D]
  BertLayerNorm emb_ln_;  // [D]
  std::vector<BertLayerParams> layers_;
  BertLinear pooler_;      // [D, D]
  BertLinear classifier_;  // [C, D]
};

// Loads weights_path (*.safetensors) with config.json beside it. config.json is validated (bounded fields) and,
// when a vocab.txt sits beside it too, checked to hold no more tokens than vocab_size, all before the model is
// allocated. Throws mpq::Error naming file and field.
std::unique_ptr<Bert> load_bert_model(const std::string& weights_path);
// Directory holding a weights file (for config.json / vocab.txt), "." when there is none.
std::string bert_dir_of(const std::string& weights_path);

}  // namespace mpq::models
