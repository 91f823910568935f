// Reading the deployable model file (deploy/model_file.h): the metadata checked field by field, the network
// rebuilt without weights (CNNs with batch norm folded away), every tensor checked against the layer's
// precision in quant_config, integer codes handed to the engine as rounded records (LayerQuant::weights), so
// native::compile packs them as they are.
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include <fmt/format.h>

#include "core/autograd/node.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/file_io.h"
#include "deploy/model_file.h"
#include "deploy/model_file_parts.h"
#include "models/cnn_common.h"
#include "models/data/tokenizer.h"
#include "models/io/safetensors.h"
#include "models/mobilenetv2.h"
#include "models/resnet50.h"
#include "models/zoo.h"

namespace mpq::deploy {
namespace {

using Meta = std::map<std::string, std::string>;

const std::string& field(const Meta& meta, const char* key, const std::string& file) {
  auto it = meta.find(key);
  check(it != meta.end(), "model file '{}': metadata field '{}' is missing", file, key);
  return it->second;
}

nlohmann::json json_field(const Meta& meta, const char* key, const std::string& file) {
  const std::string& text = field(meta, key, file);
  const size_t depth = io::json_nesting_depth(text);
  check(depth <= io::kMaxJsonDepth, "model file '{}': metadata field '{}' nests {} levels deep (limit {})", file, key,
        depth, io::kMaxJsonDepth);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  check(!j.is_discarded() && j.is_object(), "model file '{}': metadata field '{}' is not a JSON object", file, key);
  return j;
}

// The network of the file without its weights: the architecture metadata checked, CNNs without batch norm (a
// conv and its bias per unit, as the file stores them folded).
std::unique_ptr<models::Model> skeleton(const Meta& meta, const std::string& file, uint64_t tensor_bytes,
                                        ModelFileInfo& info) {
  const nlohmann::json arch = json_field(meta, "architecture", file);
  if (info.model == "bert") {
    const models::BertConfig c =
        models::BertConfig::from_json(arch, fmt::format("model file '{}' metadata 'architecture'", file));
    // Every parameter is stored at 4 bits or more: a configuration the tensors cannot hold is refused before
    // the network is allocated.
    check(uint64_t(c.parameter_count()) <= 2 * tensor_bytes,
          "model file '{}': metadata field 'architecture' describes {} parameters, more than its {} tensor bytes "
          "hold",
          file, c.parameter_count(), tensor_bytes);
    info.bert = c;
    return std::make_unique<models::Bert>(c);
  }
  const std::string where = fmt::format("model file '{}': metadata field 'architecture'", file);
  check(arch.value("batch_norm", std::string()) == "folded", "{}: 'batch_norm' must be \"folded\"", where);
  check(arch.contains("layout") && arch["layout"].is_string(), "{}: 'layout' is missing or not a string", where);
  info.layout = arch["layout"].get<std::string>();
  std::unique_ptr<models::CnnModel> m;
  if (info.model == "resnet50") {
    check(info.layout == "keras" || info.layout == "torchvision",
          "{}: 'layout' is '{}' (resnet50 has keras or torchvision)", where, info.layout);
    m = models::make_resnet50(info.layout == "keras" ? models::ResNetLayout::keras : models::ResNetLayout::torchvision);
  } else if (info.model == "mobilenetv2") {
    check(info.layout == "tflite" || info.layout == "torchvision",
          "{}: 'layout' is '{}' (mobilenetv2 has tflite or torchvision)", where, info.layout);
    m = models::make_mobilenetv2(info.layout == "tflite" ? models::MobileNetLayout::tflite
                                                         : models::MobileNetLayout::torchvision);
  } else {
    fail("model file '{}': metadata field 'model' is '{}' (expected resnet50, mobilenetv2 or bert)", file, info.model);
  }
  m->remove_batch_norm();  // the file's convs are folded: weights and biases set by fill()
  return m;
}

// A deployed model's float parameters are finite: a NaN or infinity in a weight, bias, scale or layer norm would
// only surface as non-finite (or, through a u8 store, silently wrong) outputs at run time.
void check_finite(const Tensor& x, const std::string& file, const std::string& name) {
  const int64_t n = x.numel();
  auto refuse = [&](int64_t i, float v) {
    fail("model file '{}': tensor '{}' element {} is {} (parameters must be finite)", file, name, i, v);
  };
  if (x.dtype() == DType::f32) {
    const float* p = x.data<float>();  // [n]
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(p[i])) refuse(i, p[i]);
  } else if (x.dtype() == DType::f16 || x.dtype() == DType::bf16) {
    const uint16_t* p = x.data<uint16_t>();  // [n] halves
    for (int64_t i = 0; i < n; ++i) {
      const float v = x.dtype() == DType::f16 ? f16_to_f32(p[i]) : bf16_to_f32(p[i]);
      if (!std::isfinite(v)) refuse(i, v);
    }
  }
}

// Tensor `name` of the file as layer `l` at precision `p` needs it (dtype and shape), else an error naming the
// file, the tensor and the field.
const Tensor& need(const io::TensorMap& t, const std::string& name, DType dt, const Shape& shape,
                   const std::string& file, const std::string& layer, Precision p, std::set<std::string>& used) {
  const Tensor* x = t.find(name);
  check(x != nullptr, "model file '{}': tensor '{}' is missing (layer '{}' is {} in metadata 'quant_config')", file,
        name, layer, precision_name(p));
  // fill() releases each tensor once used: a second reader would find it empty
  check(x->defined(), "model file '{}': tensor '{}' is read a second time (layer '{}')", file, name, layer);
  check(x->dtype() == dt,
        "model file '{}': tensor '{}' has dtype {}, but layer '{}' is {} in metadata 'quant_config' ({} expected)",
        file, name, io::st_name(x->dtype()), layer, precision_name(p), io::st_name(dt));
  check(x->shape() == shape,
        "model file '{}': tensor '{}' has shape {}, but layer '{}' ({} in metadata 'quant_config') needs {}", file,
        name, shape_str(x->shape()), layer, precision_name(p), shape_str(shape));
  check_finite(*x, file, name);
  used.insert(name);
  return *x;
}

// int8 codes I8 [O, K] or int4 codes U8 [O, ceil(K / 2)] (low nibble first) + scales F32 [O, K / G] as a record.
std::shared_ptr<const QuantizedWeight> record(const io::TensorMap& t, const models::QuantLayer& l, const LayerQuant& lq,
                                              const Shape& model_shape, const std::string& file,
                                              std::set<std::string>& used) {
  const int64_t O = model_shape[0], K = numel_of(model_shape) / O;
  const int bits = lq.precision == Precision::int8 ? 8 : 4;
  const int64_t G = lq.weight_group > 0 ? lq.weight_group : K;
  check(K % G == 0 && (G == K || parts::int4_group(l, G, K) == G),
        "model file '{}': metadata 'quant_config' layer '{}' field 'weight_group' is {}: the codes are stored per "
        "output channel or per group dividing its {} inputs (depthwise layers: per channel)",
        file, l.name, lq.weight_group, K);
  const Tensor& codes = need(t, l.weight, parts::weight_dtype(lq.precision),
                             parts::weight_shape(lq.precision, model_shape), file, l.name, lq.precision, used);
  const Tensor& scales = need(t, parts::scale_name(l.weight), DType::f32, {O, K / G}, file, l.name, lq.precision, used);
  auto r = std::make_shared<QuantizedWeight>();
  r->rows = O, r->cols = K, r->group = G, r->bits = bits;
  r->q.resize(size_t(O * K));
  if (bits == 8) {
    std::memcpy(r->q.data(), codes.data<int8_t>(), size_t(O * K));
  } else {
    const uint8_t* p = codes.data<uint8_t>();  // [O, ceil(K / 2)]
    const int64_t kb = (K + 1) / 2;
    for (int64_t o = 0; o < O; ++o)
      for (int64_t k = 0; k < K; ++k) {
        const uint8_t b = p[o * kb + k / 2];
        const int nib = k % 2 == 0 ? (b & 0xf) : (b >> 4);
        r->q[size_t(o * K + k)] = int8_t((nib ^ 8) - 8);  // sign-extend 4 bits
      }
  }
  r->scale.assign(scales.data<float>(), scales.data<float>() + O * (K / G));
  try {
    r->validate(l.name);
  } catch (const Error& e) {
    fail("model file '{}': tensors '{}' / '{}': {}", file, l.weight, parts::scale_name(l.weight), e.what());
  }
  return r;
}

// Fills the skeleton's float tensors from the file and returns the assignment with the integer records. Each
// file tensor is released once copied or converted, so the file's tensors and their copies are never all held
// at once (the names stay listed for the check that every tensor belongs to a layer).
Assignment fill(models::Model& m, io::TensorMap& t, const quant::QuantConfig& cfg, const std::string& file) {
  std::map<std::string, Tensor*> named;
  for (auto& [name, p] : m.named_tensors()) named[name] = p;
  std::set<std::string> used, owned;
  Assignment a;
  for (const models::QuantLayer& l : m.quant_layers()) {
    LayerQuant lq = cfg.layers.at(l.name);  // parse_config: every layer present
    if (!l.weight.empty()) {
      Tensor* w = named.at(l.weight);
      owned.insert(l.weight);
      if (precision_is_integer(lq.precision)) {
        lq.weights = record(t, l, lq, w->shape(), file, used);  // the f32 weight stays zero: not read
        t.release(parts::scale_name(l.weight));
      } else {
        w->copy_from(
            need(t, l.weight, parts::weight_dtype(lq.precision), w->shape(), file, l.name, lq.precision, used));
      }
      t.release(l.weight);
      if (parts::has_bias(l)) {
        const std::string b = parts::bias_name(l.weight);
        owned.insert(b);
        named.at(b)->copy_from(need(t, b, DType::f32, {w->size(0)}, file, l.name, lq.precision, used));
        t.release(b);
      }
    }
    a[l.name] = std::move(lq);
  }
  for (auto& [name, p] : named) {
    if (owned.count(name)) continue;
    const Tensor* x = t.find(name);
    check(x != nullptr, "model file '{}': tensor '{}' of {} is missing", file, name, m.name());
    check(x->defined(), "model file '{}': tensor '{}' of {} is read a second time", file, name, m.name());
    check(x->dtype() == DType::f32 && x->shape() == p->shape(),
          "model file '{}': tensor '{}' is {} {}, {} expects F32 {}", file, name, io::st_name(x->dtype()),
          shape_str(x->shape()), m.name(), shape_str(p->shape()));
    check_finite(*x, file, name);
    p->copy_from(*x);
    t.release(name);
    used.insert(name);
  }
  for (const auto& [name, x] : t)
    check(used.count(name) > 0, "model file '{}': tensor '{}' belongs to no layer of {} in metadata 'quant_config'",
          file, name, m.name());
  return a;
}

void read_text_metadata(const Meta& meta, const std::string& file, const models::Model& m, ModelFileInfo& info) {
  info.preprocessing = field(meta, "preprocessing", file);
  if (const auto* cnn = dynamic_cast<const models::CnnModel*>(&m)) {
    const std::string want(data::preset_name(cnn->preset()));
    check(info.preprocessing == want,
          "model file '{}': metadata field 'preprocessing' is '{}', but {} layout {} takes '{}'", file,
          info.preprocessing, info.model, info.layout, want);
    check(!meta.count("vocab"), "model file '{}': metadata field 'vocab' is for BERT, not {}", file, info.model);
    return;
  }
  check(info.preprocessing == "wordpiece",
        "model file '{}': metadata field 'preprocessing' is '{}', BERT takes 'wordpiece'", file, info.preprocessing);
  if (auto it = meta.find("vocab"); it != meta.end()) {
    const data::Vocab v = data::Vocab::parse(it->second, fmt::format("model file '{}' metadata 'vocab'", file));
    check(int64_t(v.size()) <= info.bert->vocab_size,
          "model file '{}': metadata field 'vocab' holds {} tokens, more than the architecture's vocab_size {}", file,
          v.size(), info.bert->vocab_size);
    info.vocab = it->second;
  }
}

}  // namespace

std::string ModelFileInfo::precision_summary() const {
  std::map<Precision, int> n;
  for (const auto& [name, q] : config.layers) ++n[q.precision];
  std::string s;
  for (const auto& [p, count] : n) s += fmt::format("{}{} x{}", s.empty() ? "" : ", ", precision_name(p), count);
  return s;
}

namespace {

// The model of the parsed file `file`.
LoadedModel build(io::SafetensorsFile f, const std::string& file, const native::CompileOptions& opt) {
  const Meta& meta = f.metadata;
  const std::string& format = field(meta, "format", file);
  check(format == kModelFileFormat, "model file '{}': metadata field 'format' is '{}', expected '{}'", file, format,
        kModelFileFormat);
  const std::string& version = field(meta, "version", file);
  check(version == std::to_string(kModelFileVersion),
        "model file '{}': metadata field 'version' is '{}', this build reads version {}", file, version,
        kModelFileVersion);
  LoadedModel out;
  ModelFileInfo& info = out.info;
  info.path = file;
  info.model = field(meta, "model", file);
  info.file_bytes = f.file_bytes, info.header_bytes = f.header_bytes;
  autograd::NoGradGuard no_grad;
  std::unique_ptr<models::Model> m = skeleton(meta, file, info.file_bytes - info.header_bytes, info);
  read_text_metadata(meta, file, *m, info);
  const std::vector<models::QuantLayer> layers = m->quant_layers();
  info.config = quant::parse_config(field(meta, "quant_config", file),
                                    fmt::format("model file '{}' metadata 'quant_config'", file), m->name(), layers);
  check(info.config.rounded_file.empty(),
        "model file '{}': metadata 'quant_config' names a rounded-weights file; the codes belong in the file itself",
        file);
  Assignment a = fill(*m, f.tensors, info.config, file);
  info.classes = m->num_classes();
  // moved in: compile lets go of each layer's codes once it is packed
  out.model = std::make_unique<native::CompiledModel>(*m, native::compile(*m, std::move(a), opt));
  return out;
}

}  // namespace

LoadedModel parse_model_file(std::span<const uint8_t> bytes, const std::string& file,
                             const native::CompileOptions& opt) {
  return build(io::parse_safetensors(bytes, file), file, opt);
}

LoadedModel load_model_file(const std::string& path, const native::CompileOptions& opt) {
  // header first, then each tensor straight from the file: its bytes are never held beside the tensors
  return build(io::read_safetensors(path, kMaxWeightsFileBytes, "model file"), path, opt);
}

models::Batch latency_input(const ModelFileInfo& info, int64_t seq) {
  if (info.bert) return models::bert_latency_input(*info.bert, seq);
  models::Batch b;
  b.images = models::formula_input(1, 224, 224);  // [1, 3, 224, 224]
  return b;
}

}  // namespace mpq::deploy
