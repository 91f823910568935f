#include "models/io/tfjs.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include "core/error.h"
#include "core/file_io.h"

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

// Bound on the bytes one manifest group may declare (no shard set could hold more; keeps sums exact).
constexpr uint64_t kMaxGroupBytes = uint64_t(1) << 62;

// One entry of a manifest group's "weights": what it is and where its bytes sit in the group's stream.
struct WeightSpec {
  std::string name, dtype, qdtype;  // qdtype: quantization dtype, "" when stored as `dtype`
  Shape shape;
  uint64_t n = 0;      // elements
  uint64_t bytes = 0;  // bytes in the shard stream
  uint64_t offset = 0;
  float scale = 1.f, min = 0.f;
  std::string_view file_dtype() const { return qdtype.empty() ? dtype : qdtype; }
};

WeightSpec parse_weight_spec(const json& wj, std::string_view file, const std::string& where) {
  check(wj.is_object(), "tfjs model '{}': field '{}' is not an object", file, where);
  WeightSpec s;
  s.name = str_field(wj, "name");
  check(!s.name.empty(), "tfjs model '{}': field '{}.name' is missing", file, where);
  const std::string& name = s.name;
  s.dtype = str_field(wj, "dtype");
  check(s.dtype == "float32" || s.dtype == "int32",
        "tfjs model '{}': weight '{}': field 'dtype' is '{}'; only float32/int32 are supported", file, name, s.dtype);
  auto shape_j = wj.find("shape");
  check(shape_j != wj.end() && shape_j->is_array(), "tfjs model '{}': weight '{}': field 'shape' is missing", file,
        name);
  for (const json& d : *shape_j) {
    check(d.is_number_integer() && (d.is_number_unsigned() || d.get<int64_t>() >= 0),
          "tfjs model '{}': weight '{}': field 'shape' has invalid dim {}", file, name, d.dump());
    check(d.get<uint64_t>() < (uint64_t(1) << 40), "tfjs model '{}': weight '{}': field 'shape' dim {} is too large",
          file, name, d.dump());
    s.shape.push_back(d.get<int64_t>());
  }
  if (!(checked_numel(s.shape, uint64_t(1) << 56, s.n)))
    fail("tfjs model '{}': weight '{}': field 'shape' {} is too large", file, name, shape_str(s.shape));
  if (auto q = wj.find("quantization"); q != wj.end() && !q->is_null()) {
    check(q->is_object(), "tfjs model '{}': weight '{}': field 'quantization' is not an object", file, name);
    s.qdtype = str_field(*q, "dtype");
    check(s.dtype == "float32" && (s.qdtype == "uint8" || s.qdtype == "uint16" || s.qdtype == "float16"),
          "tfjs model '{}': weight '{}': field 'quantization.dtype' '{}' is unsupported for {} weights "
          "(only uint8/uint16 with scale+min, or float16, of float32)",
          file, name, s.qdtype, s.dtype);
    if (s.qdtype != "float16") {
      auto sc = q->find("scale");
      auto mn = q->find("min");
      check(sc != q->end() && sc->is_number() && mn != q->end() && mn->is_number(),
            "tfjs model '{}': weight '{}': field 'quantization' needs numeric 'scale' and 'min'", file, name);
      const double scale = sc->get<double>(), min = mn->get<double>();
      check(std::isfinite(scale) && std::isfinite(min) && std::fabs(scale) <= std::numeric_limits<float>::max() &&
                std::fabs(min) <= std::numeric_limits<float>::max(),
            "tfjs model '{}': weight '{}': field 'quantization' scale {} / min {} is not a finite float", file, name,
            scale, min);
      s.scale = float(scale);
      s.min = float(min);
    }
  }
  s.bytes = s.n * uint64_t(shard_elem_bytes(s.file_dtype()));
  return s;
}

}  // namespace

const TfjsLayer* TfjsModel::layer(std::string_view name) const {
  for (const auto& l : layers)
    if (l.name == name) return &l;
  return nullptr;
}

TfjsModel parse_tfjs(std::string_view model_json, std::string_view file, const TfjsShardLoader& load_shard,
                     const TfjsShardSizer& shard_size) {
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
    // The group's weights first: they declare how many bytes its shards must hold together.
    std::vector<WeightSpec> specs;
    std::set<std::string> group_names;
    uint64_t need = 0;
    for (size_t w = 0; w < weights->size(); ++w) {
      specs.push_back(parse_weight_spec((*weights)[w], file, fmt::format("weightsManifest[{}].weights[{}]", g, w)));
      check(!m.weights.contains(specs.back().name),
            "tfjs model '{}': field 'weightsManifest[{}].weights[{}].name': "
            "duplicate weight name '{}'",
            file, g, w, specs.back().name);
      check(group_names.insert(specs.back().name).second,
            "tfjs model '{}': field 'weightsManifest[{}].weights[{}].name': duplicate weight name '{}'", file, g, w,
            specs.back().name);
      specs.back().offset = need;
      check(specs.back().bytes <= kMaxGroupBytes - need,
            "tfjs model '{}': the weights of weightsManifest[{}] declare more than {} bytes (at weight '{}')", file, g,
            kMaxGroupBytes, specs.back().name);
      need += specs.back().bytes;
    }
    std::vector<std::string> shard_paths;
    for (size_t p = 0; p < paths->size(); ++p) {
      const json& path = (*paths)[p];
      check(path.is_string(), "tfjs model '{}': field 'weightsManifest[{}].paths[{}]' is not a string", file, g, p);
      shard_paths.push_back(path.get<std::string>());
    }
    // Sizes before reading (when the source can tell them), bytes after: both must equal `need` exactly.
    // A shard with bytes appended or cut would otherwise shift every later weight of the group.
    auto check_total = [&](uint64_t have) {
      if (have < need)
        for (const WeightSpec& s : specs)
          if (s.offset + s.bytes > have)
            fail(
                "tfjs model '{}': weight '{}' (shape {}, {}) needs bytes [{}, {}) but the shards of "
                "weightsManifest[{}] hold only {} bytes",
                file, s.name, shape_str(s.shape), s.file_dtype(), s.offset, s.offset + s.bytes, g, have);
      if (have > need)
        fail(
            "tfjs model '{}': the {} shard(s) of weightsManifest[{}] hold {} bytes, {} bytes more than its {} "
            "weights need ({} bytes): a shard was appended to or replaced",
            file, shard_paths.size(), g, have, have - need, specs.size(), need);
    };
    if (shard_size) {
      uint64_t have = 0;
      for (const std::string& sp : shard_paths) have += shard_size(sp);  // each <= kMaxWeightsFileBytes
      check_total(have);
    }
    std::vector<uint8_t> data;           // [need] bytes: the group's shards concatenated
    if (shard_size) data.reserve(need);  // the sizes were checked against `need` above
    for (const std::string& sp : shard_paths) {
      const auto shard = load_shard(sp);
      data.insert(data.end(), shard.begin(), shard.end());
      if (data.size() > need) break;  // refused by check_total below
    }
    check_total(data.size());
    for (const WeightSpec& s : specs)
      m.weights.insert(s.name, decode_weight(data.data() + s.offset, s.shape, s.n, s.dtype, s.qdtype, s.scale, s.min));
  }
  return m;
}

TfjsModel read_tfjs(const std::string& model_json_path) {
  return parse_tfjs_in_folder(read_text_file(model_json_path, kMaxJsonFileBytes, "tfjs model.json"), model_json_path);
}

TfjsModel parse_tfjs_in_folder(std::string_view text, const std::string& model_json_path) {
  const std::string dir = std::filesystem::path(model_json_path).parent_path().string();
  // Shard paths are declared by model.json: resolved inside its folder, regular files only.
  auto resolve = [&](const std::string& rel) {
    const std::string p = resolve_inside(dir, rel, fmt::format("tfjs model '{}': field 'paths'", model_json_path));
    std::error_code ec;
    check(std::filesystem::exists(p, ec), "tfjs model '{}': shard file '{}' (field 'paths') does not exist",
          model_json_path, p);
    return p;
  };
  auto sizer = [&](const std::string& rel) {
    const std::string p = resolve(rel);
    const uint64_t n = regular_file_size(p, "tfjs shard");
    check(n <= kMaxWeightsFileBytes, "tfjs shard '{}' is {} bytes, more than the {} bytes a shard can plausibly be", p,
          n, kMaxWeightsFileBytes);
    return n;
  };
  auto loader = [&](const std::string& rel) {
    return read_regular_file(resolve(rel), kMaxWeightsFileBytes, "tfjs shard");
  };
  return parse_tfjs(text, model_json_path, loader, sizer);
}

}  // namespace mpq::io
