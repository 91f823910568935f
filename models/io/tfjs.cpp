#include "models/io/tfjs.h"

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <limits>

#include "core/error.h"

namespace mpq::io {
namespace {

using json = nlohmann::json;

// Element size in the shard for a manifest (or quantization) dtype; 0 when unknown.
int shard_elem_bytes(std::string_view dtype) {
  if (dtype == "float32" || dtype == "int32") return 4;
  if (dtype == "float16" || dtype == "uint16") return 2;
  if (dtype == "uint8") return 1;
  return 0;
}

std::string str_field(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Keras 2 inbound_nodes: [[["layer", node_index, tensor_index, {kwargs}], ...], ...] (one list per call).
// Keras 3 style: [{"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": ["layer", 0, 0]}}]}].
void collect_inbound(const json& j, std::vector<std::string>& out, int depth = 0) {
  if (depth > 8) return;
  if (j.is_array()) {
    if (!j.empty() && j[0].is_string() && (j.size() == 1 || j[1].is_number())) {
      out.push_back(j[0].get<std::string>());
      return;
    }
    for (const json& e : j) collect_inbound(e, out, depth + 1);
  } else if (j.is_object()) {
    if (auto it = j.find("keras_history"); it != j.end()) return collect_inbound(*it, out, depth + 1);
    for (const char* k : {"args", "config"})
      if (auto it = j.find(k); it != j.end()) collect_inbound(*it, out, depth + 1);
  }
}

void parse_topology(const json& topo, std::string_view file, TfjsModel& m) {
  const json* mc = &topo;
  if (auto it = topo.find("model_config"); it != topo.end()) mc = &*it;
  check(mc->is_object(), "tfjs model '{}': field 'modelTopology.model_config' is not an object", file);
  m.model_class = str_field(*mc, "class_name");
  auto cit = mc->find("config");
  check(cit != mc->end(), "tfjs model '{}': field 'modelTopology.model_config.config' is missing", file);
  // Old Sequential exports store the layer list directly as config.
  const json* layers = cit->is_array() ? &*cit : nullptr;
  if (cit->is_object())
    if (auto lit = cit->find("layers"); lit != cit->end()) layers = &*lit;
  check(layers && layers->is_array(),
        "tfjs model '{}': field 'modelTopology...config.layers' is missing or not an array", file);
  for (const json& l : *layers) {
    check(l.is_object(), "tfjs model '{}': field 'layers[{}]' is not an object", file, m.layers.size());
    TfjsLayer layer;
    layer.class_name = str_field(l, "class_name");
    if (auto c = l.find("config"); c != l.end()) layer.config = *c;
    layer.name = str_field(l, "name");
    if (layer.name.empty() && layer.config.is_object()) layer.name = str_field(layer.config, "name");
    check(!layer.class_name.empty(), "tfjs model '{}': field 'layers[{}].class_name' is missing", file,
          m.layers.size());
    if (auto in = l.find("inbound_nodes"); in != l.end())
      collect_inbound(*in, layer.inbound);
    else if (m.model_class == "Sequential" && !m.layers.empty())
      layer.inbound.push_back(m.layers.back().name);
    m.layers.push_back(std::move(layer));
  }
  if (cit->is_object())
    for (auto [key, dst] : {std::pair{"input_layers", &m.input_layers}, std::pair{"output_layers", &m.output_layers}})
      if (auto it = cit->find(key); it != cit->end()) collect_inbound(*it, *dst);
}

// Dequantizes or copies one weight from `src` (exactly numel * elem bytes) into a fresh tensor.
Tensor decode_weight(const uint8_t* src, const Shape& shape, uint64_t n, std::string_view dtype,
                     std::string_view qdtype, float scale, float min) {
  const DType out = dtype == "int32" ? DType::i32 : DType::f32;
  Tensor t = Tensor::zeros(shape, out);
  if (qdtype.empty()) {
    if (n) std::memcpy(t.raw(), src, n * 4);
    return t;
  }
  float* dst = t.data<float>();
  for (uint64_t i = 0; i < n; ++i) {
    if (qdtype == "uint8") {
      dst[i] = float(src[i]) * scale + min;
    } else {
      uint16_t q;
      std::memcpy(&q, src + 2 * i, 2);
      dst[i] = qdtype == "float16" ? f16_to_f32(q) : float(q) * scale + min;
    }
  }
  return t;
}

}  // namespace

const TfjsLayer* TfjsModel::layer(std::string_view name) const {
  for (const auto& l : layers)
    if (l.name == name) return &l;
  return nullptr;
}

TfjsModel parse_tfjs(std::string_view model_json, std::string_view file, const TfjsShardLoader& load_shard) {
  const size_t depth = json_nesting_depth(model_json);
  check(depth <= kMaxJsonDepth, "tfjs model '{}': model.json nests {} levels deep (limit {})", file, depth,
        kMaxJsonDepth);
  json root;
  try {
    root = json::parse(model_json);
  } catch (const json::exception& e) {
    fail("tfjs model '{}': model.json is not valid JSON: {}", file, e.what());
  }
  check(root.is_object(), "tfjs model '{}': model.json is not a JSON object", file);
  TfjsModel m;
  m.format = str_field(root, "format");
  check(m.format.empty() || m.format == "layers-model",
        "tfjs model '{}': field 'format' is '{}'; only 'layers-model' is supported", file, m.format);
  auto topo = root.find("modelTopology");
  check(topo != root.end() && topo->is_object(), "tfjs model '{}': field 'modelTopology' is missing or not an object",
        file);
  parse_topology(*topo, file, m);

  auto manifest = root.find("weightsManifest");
  check(manifest != root.end() && manifest->is_array(),
        "tfjs model '{}': field 'weightsManifest' is missing or not an array", file);
  for (size_t g = 0; g < manifest->size(); ++g) {
    const json& group = (*manifest)[g];
    check(group.is_object(), "tfjs model '{}': field 'weightsManifest[{}]' is not an object", file, g);
    auto paths = group.find("paths");
    auto weights = group.find("weights");
    check(paths != group.end() && paths->is_array(),
          "tfjs model '{}': field 'weightsManifest[{}].paths' is missing or not an array", file, g);
    check(weights != group.end() && weights->is_array(),
          "tfjs model '{}': field 'weightsManifest[{}].weights' is missing or not an array", file, g);
    std::vector<uint8_t> data;
    for (size_t p = 0; p < paths->size(); ++p) {
      const json& path = (*paths)[p];
      check(path.is_string(), "tfjs model '{}': field 'weightsManifest[{}].paths[{}]' is not a string", file, g, p);
      const auto shard = load_shard(path.get<std::string>());
      data.insert(data.end(), shard.begin(), shard.end());
    }
    uint64_t offset = 0;
    for (size_t w = 0; w < weights->size(); ++w) {
      const json& wj = (*weights)[w];
      const std::string where = fmt::format("weightsManifest[{}].weights[{}]", g, w);
      check(wj.is_object(), "tfjs model '{}': field '{}' is not an object", file, where);
      const std::string name = str_field(wj, "name");
      check(!name.empty(), "tfjs model '{}': field '{}.name' is missing", file, where);
      check(!m.weights.contains(name), "tfjs model '{}': field '{}.name': duplicate weight name '{}'", file, where,
            name);
      const std::string dtype = str_field(wj, "dtype");
      check(dtype == "float32" || dtype == "int32",
            "tfjs model '{}': weight '{}': field 'dtype' is '{}'; only float32/int32 are supported", file, name, dtype);
      auto shape_j = wj.find("shape");
      check(shape_j != wj.end() && shape_j->is_array(), "tfjs model '{}': weight '{}': field 'shape' is missing", file,
            name);
      Shape shape;
      for (const json& d : *shape_j) {
        check(d.is_number_integer() && (d.is_number_unsigned() || d.get<int64_t>() >= 0),
              "tfjs model '{}': weight '{}': field 'shape' has invalid dim {}", file, name, d.dump());
        check(d.get<uint64_t>() < (uint64_t(1) << 40),
              "tfjs model '{}': weight '{}': field 'shape' dim {} is too large", file, name, d.dump());
        shape.push_back(d.get<int64_t>());
      }
      uint64_t n = 0;
      if (!(checked_numel(shape, uint64_t(1) << 56, n)))
        fail("tfjs model '{}': weight '{}': field 'shape' {} is too large", file, name, shape_str(shape));

      std::string qdtype;
      float scale = 1.f, min = 0.f;
      if (auto q = wj.find("quantization"); q != wj.end() && !q->is_null()) {
        check(q->is_object(), "tfjs model '{}': weight '{}': field 'quantization' is not an object", file, name);
        qdtype = str_field(*q, "dtype");
        check(dtype == "float32" && (qdtype == "uint8" || qdtype == "uint16" || qdtype == "float16"),
              "tfjs model '{}': weight '{}': field 'quantization.dtype' '{}' is unsupported for {} weights "
              "(only uint8/uint16 with scale+min, or float16, of float32)",
              file, name, qdtype, dtype);
        if (qdtype != "float16") {
          auto s = q->find("scale");
          auto mn = q->find("min");
          check(s != q->end() && s->is_number() && mn != q->end() && mn->is_number(),
                "tfjs model '{}': weight '{}': field 'quantization' needs numeric 'scale' and 'min'", file, name);
          scale = s->get<float>();
          min = mn->get<float>();
        }
      }
      const uint64_t need = n * uint64_t(shard_elem_bytes(qdtype.empty() ? dtype : qdtype));
      if (!(data.size() >= offset && need <= data.size() - offset))
        fail(
            "tfjs model '{}': weight '{}' (shape {}, {}) needs bytes [{}, {}) but the shards of weightsManifest[{}] "
            "hold only {} bytes",
            file, name, shape_str(shape), qdtype.empty() ? dtype : qdtype, offset, offset + need, g, data.size());
      m.weights.insert(name, decode_weight(data.data() + offset, shape, n, dtype, qdtype, scale, min));
      offset += need;
    }
  }
  return m;
}

TfjsModel read_tfjs(const std::string& model_json_path) {
  const auto bytes = read_file_bytes(model_json_path);
  const std::filesystem::path dir = std::filesystem::path(model_json_path).parent_path();
  auto loader = [&](const std::string& rel) {
    const std::string p = (dir / rel).string();
    check(std::filesystem::is_regular_file(p), "tfjs model '{}': shard file '{}' (field 'paths') does not exist",
          model_json_path, p);
    return read_file_bytes(p);
  };
  return parse_tfjs(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), model_json_path,
                    loader);
}

}  // namespace mpq::io
