#include "models/bert.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "models/io/safetensors.h"
#include "models/zoo.h"
#include "ops/ops.h"

namespace mpq::models {

// ---------------- config ----------------

void BertConfig::validate(const std::string& file) const {
  auto pos = [&](int64_t v, const char* field) {
    check(v > 0, "BERT config '{}': field '{}' must be positive, got {}", file, field, v);
  };
  pos(vocab_size, "vocab_size");
  pos(hidden, "hidden_size");
  pos(layers, "num_hidden_layers");
  pos(heads, "num_attention_heads");
  pos(ffn, "intermediate_size");
  pos(max_pos, "max_position_embeddings");
  pos(type_vocab, "type_vocab_size");
  pos(num_labels, "num_labels");
  pos(seq_len, "max_seq_length");
  check(hidden % heads == 0, "BERT config '{}': hidden_size {} is not a multiple of num_attention_heads {}", file,
        hidden, heads);
  check(ln_eps > 0.0f, "BERT config '{}': field 'layer_norm_eps' must be positive, got {}", file, ln_eps);
}

BertConfig BertConfig::from_json(const nlohmann::json& j, const std::string& file) {
  check(j.is_object(), "BERT config '{}': expected a JSON object", file);
  auto req_int = [&](const char* field) -> int64_t {
    check(j.contains(field), "BERT config '{}': missing field '{}'", file, field);
    check(j[field].is_number_integer(), "BERT config '{}': field '{}' must be an integer", file, field);
    return j[field].get<int64_t>();
  };
  auto opt_int = [&](const char* field, int64_t def) -> int64_t { return j.contains(field) ? req_int(field) : def; };
  auto opt_float = [&](const char* field, float def) -> float {
    if (!j.contains(field)) return def;
    check(j[field].is_number(), "BERT config '{}': field '{}' must be a number", file, field);
    return j[field].get<float>();
  };
  BertConfig c;
  c.vocab_size = req_int("vocab_size");
  c.hidden = req_int("hidden_size");
  c.layers = req_int("num_hidden_layers");
  c.heads = req_int("num_attention_heads");
  c.ffn = req_int("intermediate_size");
  c.max_pos = req_int("max_position_embeddings");
  c.type_vocab = opt_int("type_vocab_size", 2);
  c.ln_eps = opt_float("layer_norm_eps", 1e-12f);
  c.hidden_dropout = opt_float("hidden_dropout_prob", 0.1f);
  c.attn_dropout = opt_float("attention_probs_dropout_prob", 0.1f);
  if (j.contains("num_labels")) {
    c.num_labels = req_int("num_labels");
  } else if (j.contains("id2label")) {
    check(j["id2label"].is_object(), "BERT config '{}': field 'id2label' must be an object", file);
    c.num_labels = int64_t(j["id2label"].size());
  }
  if (j.contains("hidden_act")) {
    check(j["hidden_act"] == "gelu", "BERT config '{}': field 'hidden_act' is {} but only \"gelu\" (erf) is supported",
          file, j["hidden_act"].dump());
  }
  c.seq_len = std::min(opt_int("max_seq_length", 128), c.max_pos);
  c.validate(file);
  return c;
}

BertConfig BertConfig::load(const std::string& path) {
  std::ifstream f(path);
  check(bool(f), "BERT config '{}': cannot open file", path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    fail("BERT config '{}': invalid JSON: {}", path, e.what());
  }
  return from_json(j, path);
}

nlohmann::json BertConfig::to_json() const {
  // floats written by their shortest decimal form (0.1, not 0.10000000149011612)
  auto dec = [](float v) { return std::stod(fmt::format("{}", v)); };
  nlohmann::json j;
  j["architectures"] = {"BertForSequenceClassification"};
  j["model_type"] = "bert";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden;
  j["num_hidden_layers"] = layers;
  j["num_attention_heads"] = heads;
  j["intermediate_size"] = ffn;
  j["hidden_act"] = "gelu";
  j["hidden_dropout_prob"] = dec(hidden_dropout);
  j["attention_probs_dropout_prob"] = dec(attn_dropout);
  j["max_position_embeddings"] = max_pos;
  j["type_vocab_size"] = type_vocab;
  j["initializer_range"] = 0.02;
  j["layer_norm_eps"] = dec(ln_eps);
  j["pad_token_id"] = 0;
  j["num_labels"] = num_labels;
  nlohmann::json id2label, label2id;
  for (int64_t i = 0; i < num_labels; ++i) {
    id2label[std::to_string(i)] = "LABEL_" + std::to_string(i);
    label2id["LABEL_" + std::to_string(i)] = i;
  }
  j["id2label"] = id2label;
  j["label2id"] = label2id;
  j["max_seq_length"] = seq_len;
  return j;
}

void BertConfig::save(const std::string& path) const {
  std::ofstream f(path);
  check(bool(f), "cannot open '{}' for writing", path);
  f << to_json().dump(2) << "\n";
  check(bool(f), "error writing '{}'", path);
}

// ---------------- model ----------------

namespace {
BertLinear make_linear(int64_t out, int64_t in) { return {Tensor::zeros({out, in}), Tensor::zeros({out})}; }
BertLayerNorm make_ln(int64_t d) { return {Tensor::full({d}, 1.0f), Tensor::zeros({d})}; }
}  // namespace

Bert::Bert(BertConfig cfg) : cfg_(std::move(cfg)) {
  cfg_.validate("<in memory>");
  const int64_t D = cfg_.hidden, F = cfg_.ffn;
  word_emb_ = Tensor::zeros({cfg_.vocab_size, D});
  pos_emb_ = Tensor::zeros({cfg_.max_pos, D});
  type_emb_ = Tensor::zeros({cfg_.type_vocab, D});
  emb_ln_ = make_ln(D);
  layers_.resize(size_t(cfg_.layers));
  for (auto& l : layers_) {
    l.q = make_linear(D, D);
    l.k = make_linear(D, D);
    l.v = make_linear(D, D);
    l.attn_out = make_linear(D, D);
    l.attn_ln = make_ln(D);
    l.ffn_in = make_linear(F, D);
    l.ffn_out = make_linear(D, F);
    l.out_ln = make_ln(D);
  }
  pooler_ = make_linear(D, D);
  classifier_ = make_linear(cfg_.num_labels, D);
}

std::vector<std::pair<std::string, Tensor*>> Bert::named_tensors() {
  std::vector<std::pair<std::string, Tensor*>> out;
  auto lin = [&](const std::string& n, BertLinear& l) {
    out.emplace_back(n + ".weight", &l.w);
    out.emplace_back(n + ".bias", &l.b);
  };
  auto ln = [&](const std::string& n, BertLayerNorm& l) {
    out.emplace_back(n + ".weight", &l.g);
    out.emplace_back(n + ".bias", &l.b);
  };
  out.emplace_back("bert.embeddings.word_embeddings.weight", &word_emb_);
  out.emplace_back("bert.embeddings.position_embeddings.weight", &pos_emb_);
  out.emplace_back("bert.embeddings.token_type_embeddings.weight", &type_emb_);
  ln("bert.embeddings.LayerNorm", emb_ln_);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const std::string p = "bert.encoder.layer." + std::to_string(i) + ".";
    auto& l = layers_[i];
    lin(p + "attention.self.query", l.q);
    lin(p + "attention.self.key", l.k);
    lin(p + "attention.self.value", l.v);
    lin(p + "attention.output.dense", l.attn_out);
    ln(p + "attention.output.LayerNorm", l.attn_ln);
    lin(p + "intermediate.dense", l.ffn_in);
    lin(p + "output.dense", l.ffn_out);
    ln(p + "output.LayerNorm", l.out_ln);
  }
  lin("bert.pooler.dense", pooler_);
  lin("classifier", classifier_);
  return out;
}

void Bert::init_random(uint64_t seed, float std) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, std);
  for (auto& [name, t] : named_tensors()) {
    const bool is_ln = name.find("LayerNorm") != std::string::npos;
    const bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    float* p = t->data<float>();  // [numel]
    for (int64_t i = 0; i < t->numel(); ++i) p[i] = is_ln ? (is_bias ? 0.0f : 1.0f) : (is_bias ? 0.0f : nd(rng));
  }
  float* w0 = word_emb_.data<float>();  // row 0 ([PAD]) of [V, D]
  for (int64_t i = 0; i < cfg_.hidden; ++i) w0[i] = 0.0f;
}

void Bert::load_state(const io::TensorMap& map, const std::string& file) {
  for (auto& [name, t] : named_tensors()) {
    std::string key = name;
    const auto ln = name.find("LayerNorm.");
    if (ln != std::string::npos && !map.contains(name)) {  // TF-era checkpoints: LayerNorm.gamma / .beta
      const std::string old = name.substr(0, ln) + (name.ends_with(".weight") ? "LayerNorm.gamma" : "LayerNorm.beta");
      if (map.contains(old)) key = old;
    }
    const Tensor& src = io::require(map, key, t->shape(), file);
    check(src.dtype() == DType::f32 || src.dtype() == DType::f16 || src.dtype() == DType::bf16,
          "weights '{}': tensor '{}' has dtype {} but a float type (f32, f16, bf16) expected", file, key,
          dtype_name(src.dtype()));
    t->copy_from(src);  // converts to f32
  }
}

io::TensorMap Bert::state() const {
  io::TensorMap m;
  for (auto& [name, t] : const_cast<Bert*>(this)->named_tensors()) m.insert(name, t->clone());
  return m;
}

Tensor Bert::qlinear(const std::string& layer, const Tensor& x, const BertLinear& l) {
  if (!hook_) return ops::linear(x, l.w, l.b);
  return ops::linear(hook_->on_input(layer, 0, x), hook_->on_weight(layer, l.w), l.b);
}

Tensor Bert::qmatmul(const std::string& layer, const Tensor& a, const Tensor& b) {
  if (!hook_) return ops::matmul(a, b);
  return ops::matmul(hook_->on_input(layer, 0, a), hook_->on_input(layer, 1, b));
}

Tensor Bert::attention(const Tensor& x, const BertLayerParams& p, const std::string& pre, const Tensor& mask_add,
                       bool training) {
  const int64_t N = x.size(0), L = x.size(1), D = cfg_.hidden, H = cfg_.heads, dh = cfg_.head_dim();
  // Heads are views: [N, L, D] -> [N, L, H, dh] -> [N, H, L, dh] (strided; matmul reads them in place).
  auto heads = [&](const Tensor& t) { return ops::transpose(ops::reshape(t, {N, L, H, dh}), 1, 2); };
  Tensor q = heads(qlinear(pre + "attention.self.query", x, p.q));                    // [N, H, L, dh] view
  Tensor k = heads(qlinear(pre + "attention.self.key", x, p.k));                      // [N, H, L, dh] view
  Tensor v = heads(qlinear(pre + "attention.self.value", x, p.v));                    // [N, H, L, dh] view
  Tensor scores = qmatmul(pre + "attention.self.qk", q, ops::transpose(k, -1, -2));   // [N, H, L, L]
  scores = ops::add(ops::mul_scalar(scores, 1.0f / std::sqrt(float(dh))), mask_add);  // [N, H, L, L]
  Tensor probs = ops::dropout(ops::softmax(scores, -1), cfg_.attn_dropout, training, next_seed());  // [N, H, L, L]
  Tensor ctx = qmatmul(pre + "attention.self.pv", probs, v);                                        // [N, H, L, dh]
  ctx = ops::reshape(ops::transpose(ctx, 1, 2), {N, L, D});               // [N, L, D] (one copy: head merge)
  Tensor out = qlinear(pre + "attention.output.dense", ctx, p.attn_out);  // [N, L, D]
  out = ops::dropout(out, cfg_.hidden_dropout, training, next_seed());
  return ops::layer_norm(ops::add(out, x), p.attn_ln.g, p.attn_ln.b, cfg_.ln_eps);  // [N, L, D]
}

Tensor Bert::encode(const Batch& batch, bool training) {
  const int64_t L = batch.seq_len;
  check(L > 0 && !batch.ids.empty() && int64_t(batch.ids.size()) % L == 0,
        "bert: batch has {} ids for sequence length {}", batch.ids.size(), L);
  check(L <= cfg_.max_pos, "bert: sequence length {} exceeds max_position_embeddings {}", L, cfg_.max_pos);
  const int64_t N = int64_t(batch.ids.size()) / L;
  check(batch.mask.empty() || batch.mask.size() == batch.ids.size(), "bert: mask has {} entries for {} ids",
        batch.mask.size(), batch.ids.size());

  std::vector<int32_t> pos(static_cast<size_t>(L));  // [L]
  for (int64_t i = 0; i < L; ++i) pos[size_t(i)] = int32_t(i);
  Tensor x = ops::embedding(word_emb_, batch.ids, {N, L});                                        // [N, L, D]
  Tensor pt = ops::add(ops::embedding(pos_emb_, pos, {L}), ops::embedding(type_emb_, {0}, {1}));  // [L, D]
  x = ops::add(x, pt);                                                                            // [N, L, D]
  x = ops::dropout(ops::layer_norm(x, emb_ln_.g, emb_ln_.b, cfg_.ln_eps), cfg_.hidden_dropout, training, next_seed());

  Tensor mask_add = Tensor::zeros({N, 1, 1, L});  // [N, 1, 1, L]: 0 for tokens, -10000 for padding (HF)
  float* pm = mask_add.data<float>();
  for (size_t i = 0; i < batch.ids.size(); ++i) {
    const bool real = batch.mask.empty() ? batch.ids[i] != 0 : batch.mask[i] != 0;
    pm[i] = real ? 0.0f : -10000.0f;
  }

  for (size_t i = 0; i < layers_.size(); ++i) {
    const auto& p = layers_[i];
    const std::string pre = "bert.encoder.layer." + std::to_string(i) + ".";
    Tensor h = attention(x, p, pre, mask_add, training);                     // [N, L, D]
    Tensor f = ops::gelu(qlinear(pre + "intermediate.dense", h, p.ffn_in));  // [N, L, F]
    f = ops::dropout(qlinear(pre + "output.dense", f, p.ffn_out), cfg_.hidden_dropout, training, next_seed());
    x = ops::layer_norm(ops::add(f, h), p.out_ln.g, p.out_ln.b, cfg_.ln_eps);  // [N, L, D]
  }
  return x;
}

Tensor Bert::forward(const Batch& batch, bool training) {
  Tensor x = encode(batch, training);  // [N, L, D]
  const int64_t N = x.size(0), D = x.size(2);
  Tensor cls = ops::reshape(ops::slice(x, 1, 0, 1), {N, D});              // [N, D]
  Tensor pooled = ops::tanh(qlinear("bert.pooler.dense", cls, pooler_));  // [N, D]
  pooled = ops::dropout(pooled, cfg_.hidden_dropout, training, next_seed());
  return qlinear("classifier", pooled, classifier_);  // [N, C]
}

// ---------------- quantizable layers ----------------

std::vector<QuantLayer> Bert::quant_layers() const {
  const int64_t S = cfg_.seq_len, D = cfg_.hidden, F = cfg_.ffn;
  std::vector<QuantLayer> out;
  auto add = [&](std::string name, LayerKind kind, std::string weight, int64_t macs, std::vector<std::string> prod,
                 std::vector<std::string> cons, std::vector<std::string> res = {}) {
    out.push_back(
        {std::move(name), kind, std::move(weight), macs, std::move(prod), std::move(cons), std::move(res), {}});
  };
  // Producers/consumers follow the data path through non-quantizable ops (reshape, softmax, LayerNorm, GELU,
  // tanh). Residual partners: the two layers whose outputs meet at a residual add: attention.output.dense of
  // layer i with the block input's producer (output.dense of layer i-1; none for layer 0, whose input is the
  // embeddings), and output.dense of layer i with attention.output.dense of layer i. Listed symmetrically.
  const std::string pooler = "bert.pooler.dense", cls = "classifier";
  for (int64_t i = 0; i < cfg_.layers; ++i) {
    const std::string p = "bert.encoder.layer." + std::to_string(i) + ".";
    const std::string q = p + "attention.self.query", k = p + "attention.self.key", v = p + "attention.self.value";
    const std::string qk = p + "attention.self.qk", pv = p + "attention.self.pv";
    const std::string ao = p + "attention.output.dense", fi = p + "intermediate.dense", fo = p + "output.dense";
    const std::string prev_fo = i > 0 ? "bert.encoder.layer." + std::to_string(i - 1) + ".output.dense" : "";
    const std::string next = i + 1 < cfg_.layers ? "bert.encoder.layer." + std::to_string(i + 1) + "." : "";
    std::vector<std::string> in_prod = prev_fo.empty() ? std::vector<std::string>{} : std::vector<std::string>{prev_fo};
    std::vector<std::string> fo_cons =
        next.empty() ? std::vector<std::string>{pooler}
                     : std::vector<std::string>{next + "attention.self.query", next + "attention.self.key",
                                                next + "attention.self.value"};
    std::vector<std::string> fo_res = {ao};
    if (!next.empty()) fo_res.push_back(next + "attention.output.dense");
    add(q, LayerKind::linear, q + ".weight", S * D * D, in_prod, {qk});
    add(k, LayerKind::linear, k + ".weight", S * D * D, in_prod, {qk});
    add(v, LayerKind::linear, v + ".weight", S * D * D, in_prod, {pv});
    add(qk, LayerKind::attention_matmul, "", S * S * D, {q, k}, {pv});
    add(pv, LayerKind::attention_matmul, "", S * S * D, {qk, v}, {ao});
    add(ao, LayerKind::linear, ao + ".weight", S * D * D, {pv}, {fi}, in_prod);
    add(fi, LayerKind::linear, fi + ".weight", S * D * F, {ao}, {fo});
    add(fo, LayerKind::linear, fo + ".weight", S * F * D, {fi}, fo_cons, fo_res);
  }
  const std::string last = "bert.encoder.layer." + std::to_string(cfg_.layers - 1) + ".output.dense";
  add(pooler, LayerKind::linear, pooler + ".weight", D * D, {last}, {cls});
  add(cls, LayerKind::linear, cls + ".weight", D * cfg_.num_labels, {pooler}, {});
  return out;
}

// ---------------- loading ----------------

std::string bert_dir_of(const std::string& weights_path) {
  const auto parent = std::filesystem::path(weights_path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

std::unique_ptr<Bert> load_bert_model(const std::string& weights_path) {
  const std::string cfg_path = bert_dir_of(weights_path) + "/config.json";
  check(std::filesystem::exists(cfg_path), "BERT weights '{}': config.json not found beside them ('{}')", weights_path,
        cfg_path);
  auto m = std::make_unique<Bert>(BertConfig::load(cfg_path));
  const io::SafetensorsFile f = io::read_safetensors(weights_path);
  m->load_state(f.tensors, weights_path);
  return m;
}

std::unique_ptr<Model> load_bert(const std::string& weights_path) { return load_bert_model(weights_path); }

}  // namespace mpq::models
