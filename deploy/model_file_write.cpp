// Writing the deployable model file (deploy/model_file.h): the weights each native engine packs, at the
// assignment's precisions, in one safetensors file.
#include <cstring>
#include <map>
#include <set>

#include <fmt/format.h>

#include "core/autograd/node.h"
#include "core/error.h"
#include "core/file_io.h"
#include "deploy/model_file.h"
#include "deploy/model_file_parts.h"
#include "models/bert.h"
#include "models/cnn_common.h"
#include "models/io/safetensors.h"
#include "models/native/model_file.h"
#include "models/native/weight_codes.h"
#include "ops/fold_bn.h"

namespace mpq::deploy {
namespace {

// What a layer's engine packs: the f32 weight in the model's shape (contiguous) and the f32 bias [O] (undefined:
// zero). CNN convs with batch norm are folded by ops::fold_bn, as models/native/cnn_native_layer.cpp
// make_conv_layer folds them.
struct EngineParams {
  Tensor w, b;
};

std::map<std::string, EngineParams> cnn_params(const models::CnnModel& m) {
  std::map<std::string, EngineParams> out;
  for (const models::CnnStep& s : m.inference_steps()) {
    if (s.op == models::CnnStep::Op::linear) out[s.linear->name] = {s.linear->weight.contiguous(), s.linear->bias};
    if (s.op != models::CnnStep::Op::conv) continue;
    const models::ConvUnit& u = *s.conv;
    EngineParams p{u.weight, u.bias};
    if (u.has_bn()) {
      const ops::FoldedConv f =
          ops::fold_bn(u.weight, u.bias, u.gamma, u.beta, u.running_mean, u.running_var, u.spec.eps);
      p = {f.weight, f.bias};
    }
    p.w = p.w.contiguous();
    out[u.spec.conv] = p;
  }
  return out;
}

// Everything by name, for BERT (its engine reads "<layer>.weight" / "<layer>.bias" as they are).
std::map<std::string, Tensor*> named(models::Model& m) {
  std::map<std::string, Tensor*> t;
  for (auto& [name, p] : m.named_tensors()) t[name] = p;
  return t;
}

Tensor f32_copy(const float* p, const Shape& shape) {
  Tensor t = Tensor::empty(shape);
  std::memcpy(t.data<float>(), p, size_t(numel_of(shape)) * 4);
  return t;
}

// int8 codes [O, K] as I8; int4 codes as U8 [O, ceil(K / 2)], element 2i in the low nibble of byte i.
Tensor code_tensor(const std::vector<int8_t>& q, int64_t O, int64_t K, int bits) {
  if (bits == 8) {
    Tensor t = Tensor::empty({O, K}, DType::i8);
    std::memcpy(t.data<int8_t>(), q.data(), q.size());
    return t;
  }
  const int64_t kb = (K + 1) / 2;
  Tensor t = Tensor::zeros({O, kb}, DType::u8);
  uint8_t* p = t.data<uint8_t>();
  for (int64_t o = 0; o < O; ++o)
    for (int64_t k = 0; k < K; ++k) {
      const uint8_t nib = uint8_t(q[size_t(o * K + k)]) & 0xf;  // two's complement, 4 bits
      p[o * kb + k / 2] |= k % 2 == 0 ? nib : uint8_t(nib << 4);
    }
  return t;
}

// Adds layer l's tensors; `written` gets the quant-config entry (the group the codes use, no record).
void add_layer(io::TensorMap& out, const models::QuantLayer& l, const LayerQuant& lq, const EngineParams& p,
               LayerQuant& written) {
  const Tensor& w = p.w;  // f32, contiguous, model shape
  check(w.defined() && w.dtype() == DType::f32 && w.dim() >= 2,
        "export: layer '{}' weight '{}' is not an f32 matrix / conv kernel", l.name, l.weight);
  const int64_t O = w.size(0), K = w.numel() / O;
  std::vector<float> correction;  // [O] or empty
  switch (lq.precision) {
    case Precision::fp32:
      out.insert(l.weight, w.clone());
      break;
    case Precision::fp16:
      out.insert(l.weight, w.to(DType::f16));  // round to nearest even, as the engine packs it
      break;
    case Precision::bf16:
      out.insert(l.weight, w.to(DType::bf16));
      break;
    case Precision::int8:
    case Precision::int4: {
      const int bits = lq.precision == Precision::int8 ? 8 : 4;
      const int64_t group = bits == 4 ? parts::int4_group(l, lq.weight_group, K) : 0;
      native::WeightCodes c = native::weight_codes(l.name, w.data<float>(), O, K, bits, group, lq);
      check(c.group == 0 || (bits == 4 && (c.group == 32 || c.group == 64 || c.group == 128) && K % c.group == 0),
            "export: layer '{}' has {}-bit codes with group {}; the file stores int8 per output channel and int4 per "
            "channel or per group of 32 / 64 / 128",
            l.name, bits, c.group);
      const int64_t G = c.group > 0 ? c.group : K;
      out.insert(l.weight, code_tensor(c.q, O, K, bits));
      out.insert(parts::scale_name(l.weight), f32_copy(c.scales.data(), {O, K / G}));
      written.weight_group = c.group;
      correction = std::move(c.bias_correction);
      break;
    }
  }
  if (!parts::has_bias(l)) {
    check(correction.empty(), "export: layer '{}' has a bias correction but no bias", l.name);
    return;
  }
  std::vector<float> bias(size_t(O), 0.0f);  // the engine's: no bias is zero
  if (p.b.defined()) {
    const Tensor b = p.b.contiguous();  // [O]
    check(b.numel() == O && b.dtype() == DType::f32, "export: layer '{}' bias has {} entries for {} outputs", l.name,
          b.numel(), O);
    std::memcpy(bias.data(), b.data<float>(), size_t(O) * 4);
  }
  check(correction.empty() || int64_t(correction.size()) == O,
        "export: layer '{}' has {} bias corrections for {} outputs", l.name, correction.size(), O);
  for (size_t i = 0; i < correction.size(); ++i) bias[i] = bias[i] + correction[i];  // the engine's f32 addition
  out.insert(parts::bias_name(l.weight), f32_copy(bias.data(), {O}));
}

std::string architecture(models::Model& m) {
  if (auto* cnn = dynamic_cast<models::CnnModel*>(&m))
    return nlohmann::json{{"layout", cnn->layout()}, {"batch_norm", "folded"}}.dump();
  auto* bert = dynamic_cast<models::Bert*>(&m);
  check(bert != nullptr, "export: model '{}' has no native engine (resnet50, mobilenetv2 and bert have)", m.name());
  return bert->config().to_json().dump();
}

}  // namespace

int64_t stored_bytes(models::Model& m, const Assignment& a) {
  const auto tensors = named(m);
  const bool cnn = dynamic_cast<models::CnnModel*>(&m) != nullptr;
  std::set<std::string> owned;
  int64_t total = 0;
  for (const models::QuantLayer& l : m.quant_layers()) {
    auto it = a.find(l.name);
    const LayerQuant lq = it == a.end() ? LayerQuant{} : it->second;
    native::StoredLayer s;
    s.operands = models::layer_operands(l.kind);
    if (!l.weight.empty()) {
      const Tensor* w = tensors.at(l.weight);
      s.out = w->size(0), s.in = w->numel() / s.out, s.bias = parts::has_bias(l);
      owned.insert(l.weight);
      owned.insert(parts::bias_name(l.weight));
    }
    total += native::stored_layer_bytes(s, lq.precision, lq.weight_group);
  }
  if (!cnn)  // CNNs: every other tensor is a batch norm folded into its conv
    for (const auto& [name, t] : tensors)
      if (!owned.count(name)) total += 4 * t->numel();
  return total;
}

std::vector<uint8_t> serialize_model_file(models::Model& m, const Assignment& a, const ExportOptions& opt,
                                          ExportSummary* summary) {
  autograd::NoGradGuard no_grad;
  const std::vector<models::QuantLayer> layers = m.quant_layers();
  std::set<std::string> known;
  for (const models::QuantLayer& l : layers) known.insert(l.name);
  for (const auto& [name, q] : a)
    check(known.count(name) > 0, "export: layer '{}' is not a quantizable layer of {}", name, m.name());
  auto* cnn = dynamic_cast<models::CnnModel*>(&m);
  const std::string arch = architecture(m);  // also refuses models without a native engine
  const auto tensors = named(m);
  const std::map<std::string, EngineParams> cnn_p = cnn ? cnn_params(*cnn) : std::map<std::string, EngineParams>{};

  io::TensorMap out;
  quant::QuantConfig cfg;
  cfg.model = m.name();
  cfg.weights = opt.weights;
  std::set<std::string> owned;
  for (const models::QuantLayer& l : layers) {
    auto it = a.find(l.name);
    const LayerQuant lq = it == a.end() ? LayerQuant{} : it->second;
    LayerQuant written = lq;
    written.weights = nullptr;
    written.weight_group = 0;  // int4 layers with weights: the codes' group (add_layer)
    if (!l.weight.empty()) {
      EngineParams p;
      if (cnn) {
        auto pit = cnn_p.find(l.name);
        check(pit != cnn_p.end(), "export: layer '{}' is not a step of {}'s forward", l.name, m.name());
        p = pit->second;
      } else {
        auto w = tensors.find(l.weight);
        check(w != tensors.end(), "export: layer '{}' names weight '{}' that {} lacks", l.name, l.weight, m.name());
        p.w = w->second->contiguous();
        if (auto b = tensors.find(parts::bias_name(l.weight)); b != tensors.end()) p.b = *b->second;
      }
      add_layer(out, l, lq, p, written);
      owned.insert(l.weight);
      owned.insert(parts::bias_name(l.weight));
    }
    cfg.layers[l.name] = written;
  }
  if (!cnn)  // BERT's other parameters at f32 (a CNN's are batch norms, folded above)
    for (auto& [name, t] : m.named_tensors())
      if (!owned.count(name)) out.insert(name, t->contiguous().clone());

  std::map<std::string, std::string> meta = {{"format", kModelFileFormat},
                                             {"version", std::to_string(kModelFileVersion)},
                                             {"model", m.name()},
                                             {"architecture", arch},
                                             {"quant_config", quant::config_to_json(cfg, layers).dump()}};
  meta["preprocessing"] = cnn ? std::string(data::preset_name(cnn->preset())) : "wordpiece";
  if (!opt.vocab.empty()) {
    check(!cnn, "export: a vocabulary is stored for BERT only, not {}", m.name());
    meta["vocab"] = opt.vocab;
  }
  std::vector<uint8_t> bytes = io::serialize_safetensors(out, meta);
  if (summary) {
    uint64_t hlen = 0;
    std::memcpy(&hlen, bytes.data(), 8);  // little-endian u64 header length (x86-64 is little-endian)
    summary->file_bytes = bytes.size();
    summary->header_bytes = 8 + hlen;
    summary->tensor_bytes = bytes.size() - summary->header_bytes;
    summary->stored_bytes = stored_bytes(m, a);
  }
  return bytes;
}

ExportSummary write_model_file(const std::string& path, models::Model& m, const Assignment& a,
                               const ExportOptions& opt) {
  ExportSummary s;
  const std::vector<uint8_t> bytes = serialize_model_file(m, a, opt, &s);
  write_file_atomic(path, bytes);
  return s;
}

}  // namespace mpq::deploy
