#include "quant/config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <type_traits>

#include "core/error.h"
#include "core/file_io.h"
#include "models/io/common.h"
#include "quant/rounding.h"

namespace mpq::quant {

using nlohmann::json;
namespace fs = std::filesystem;

json config_to_json(const QuantConfig& cfg, const std::vector<models::QuantLayer>& layers) {
  json j = {{"format", "mpq-quant-config"}, {"version", 1}, {"model", cfg.model}};
  if (cfg.weights) j["weights"] = cfg.weights->to_json();
  json arr = json::array();
  for (const auto& l : layers) {
    auto it = cfg.layers.find(l.name);
    check(it != cfg.layers.end(), "save config: layer '{}' has no precision", l.name);
    const LayerQuant& q = it->second;
    json e = {{"name", l.name}, {"precision", precision_name(q.precision)}, {"weight_group", q.weight_group}};
    json ins = json::array();
    for (const auto& [op, p] : q.act)
      ins.push_back({{"operand", op}, {"scale", p.scale}, {"zero_point", p.zero_point}});
    e["inputs"] = ins;
    arr.push_back(e);
  }
  j["layers"] = arr;
  return j;
}

void save_config(const std::string& path, const QuantConfig& cfg, const std::vector<models::QuantLayer>& layers) {
  RoundedWeights used;  // the records of the layers' own precisions
  for (const auto& [name, q] : cfg.layers)
    if (q.weights) (q.precision == Precision::int8 ? used.int8 : used.int4)[name] = q.weights;
  json j = config_to_json(cfg, layers);
  if (!used.empty()) {
    fs::path side(path);
    side.replace_extension(".rounded.safetensors");
    write_file_atomic(side.string(),
                      serialize_rounded(used, {{"format", "mpq-rounded-weights"}, {"model", cfg.model}}));
    j["rounded_weights"] = {{"file", side.filename().string()}};
  }
  write_file_atomic(path, j.dump(1) + "\n");
}

namespace {
template <class T>
T field(const json& j, const char* key, const std::string& where) {
  check(j.is_object() && j.contains(key), "{}: field '{}' is missing", where, key);
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    // nlohmann converts a float or an out-of-range integer with a plain cast (undefined behaviour): only
    // integers that fit T are taken.
    const json& v = j.at(key);
    const bool fits = v.is_number_unsigned()  ? v.get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max())
                      : v.is_number_integer() ? v.get<int64_t>() >= int64_t(std::numeric_limits<T>::min()) &&
                                                    v.get<int64_t>() <= int64_t(std::numeric_limits<T>::max())
                                              : false;
    check(fits, "{}: field '{}' is {}, not an integer in [{}, {}]", where, key, v.dump(), std::numeric_limits<T>::min(),
          std::numeric_limits<T>::max());
  }
  try {
    return j.at(key).get<T>();
  } catch (const json::exception& e) {
    fail("{}: field '{}' has the wrong type ({})", where, key, j.at(key).dump());
  }
}
}  // namespace

QuantConfig config_from_json(const json& j, const std::string& what, const std::string& model_name,
                             const std::vector<models::QuantLayer>& layers, const WeightsId* expect) {
  check(j.is_object(), "config '{}': top level is not a JSON object", what);
  const std::string fmt_name = field<std::string>(j, "format", "config '" + what + "'");
  check(fmt_name == "mpq-quant-config", "config '{}': field 'format' is '{}', expected 'mpq-quant-config'", what,
        fmt_name);
  const int version = field<int>(j, "version", "config '" + what + "'");
  check(version == 1, "config '{}': field 'version' is {}, only 1 is supported", what, version);
  QuantConfig cfg;
  cfg.model = field<std::string>(j, "model", "config '" + what + "'");
  check(cfg.model == model_name, "config '{}' is for model '{}', not '{}'", what, cfg.model, model_name);
  if (j.contains("weights")) {
    const json& w = j["weights"];
    const std::string where = "config '" + what + "' weights";
    WeightsId id;
    id.path = field<std::string>(w, "path", where);
    id.size = field<int64_t>(w, "size", where);
    id.mtime_ns = field<int64_t>(w, "mtime_ns", where);
    id.head_tail_hash = field<std::string>(w, "head_tail_fnv1a64", where);
    if (expect)
      check(id.same_content(*expect),
            "config '{}' was calibrated on weights '{}' ({} bytes, hash {}), not on '{}' ({} bytes, hash {})", what,
            id.path, id.size, id.head_tail_hash, expect->path, expect->size, expect->head_tail_hash);
    cfg.weights = id;
  }
  std::map<std::string, models::LayerKind> known;  // name -> kind
  for (const auto& l : layers) known[l.name] = l.kind;
  check(j.contains("layers") && j["layers"].is_array(), "config '{}': field 'layers' is missing or not an array", what);
  for (size_t k = 0; k < j["layers"].size(); ++k) {
    const json& e = j["layers"][k];
    const std::string where0 = fmt::format("config '{}' layers[{}]", what, k);
    const std::string name = field<std::string>(e, "name", where0);
    const std::string where = fmt::format("config '{}' layer '{}'", what, name);
    check(known.count(name), "config '{}': layer '{}' is not a quantizable layer of {}", what, name, model_name);
    check(!cfg.layers.count(name), "config '{}': layer '{}' is listed twice", what, name);
    LayerQuant q;
    const std::string prec = field<std::string>(e, "precision", where);
    try {
      q.precision = parse_precision(prec);
    } catch (const Error& err) {
      fail("{}: field 'precision': {}", where, err.what());
    }
    q.weight_group = e.contains("weight_group") ? field<int64_t>(e, "weight_group", where) : 0;
    check(q.weight_group == 0 || q.weight_group == 32 || q.weight_group == 64 || q.weight_group == 128,
          "{}: field 'weight_group' is {}, expected 0, 32, 64 or 128", where, q.weight_group);
    check(q.weight_group == 0 || q.precision == Precision::int4, "{}: field 'weight_group' {} is only valid for int4",
          where, q.weight_group);
    if (e.contains("inputs")) {
      check(e["inputs"].is_array(), "{}: field 'inputs' is not an array", where);
      for (const json& in : e["inputs"]) {
        const int op = field<int>(in, "operand", where + " inputs");
        ActQuantParams p;
        const double scale = field<double>(in, "scale", where + " inputs");  // checked before narrowing
        p.zero_point = field<int32_t>(in, "zero_point", where + " inputs");
        check(op == 0 || op == 1, "{}: input operand {} (expected 0 or 1)", where, op);
        check(scale >= kMinActScale && scale <= kMaxActScale,
              "{}: input {} field 'scale' is {}, outside the accepted range [{}, {}]", where, op, scale, kMinActScale,
              kMaxActScale);
        p.scale = float(scale);
        check(p.zero_point >= 0 && p.zero_point <= 255, "{}: input {} field 'zero_point' is {}, not in [0, 255]", where,
              op, p.zero_point);
        p.lo = -float(p.zero_point) * p.scale;
        p.hi = float(255 - p.zero_point) * p.scale;
        q.act[op] = p;
      }
    }
    // integer layers quantize each of their inputs (embedding tables have none); fp32 / fp16 / bf16 layers take
    // them as they are
    const int operands = models::layer_operands(known.at(name));
    check(!precision_is_integer(q.precision) || int(q.act.size()) == operands,
          "{}: precision {} needs 'inputs' with a scale and zero point for each of its {} operand(s), got {}", where,
          precision_name(q.precision), operands, q.act.size());
    cfg.layers[name] = q;
  }
  for (const auto& l : layers)
    check(cfg.layers.count(l.name), "config '{}': quantizable layer '{}' of {} is missing", what, l.name, model_name);
  if (j.contains("rounded_weights")) {
    cfg.rounded_file = field<std::string>(j["rounded_weights"], "file", "config '" + what + "' rounded_weights");
    check(!cfg.rounded_file.empty(), "config '{}': rounded_weights field 'file' is empty", what);
  }
  return cfg;
}

namespace {
// Attaches the records of cfg.rounded_file (resolved inside the config's folder) to their layers. The file
// the search writes holds a record for every int4 layer with input statistics (embedding tables have none and
// round to nearest): an int4 layer without one would silently round to nearest (a hand-edited config that
// moved a layer to int4 measured ResNet50 at 63.5 % instead of 79.5 %), so it is refused.
void attach_rounded(QuantConfig& cfg, const std::string& config_path, const std::vector<models::QuantLayer>& layers) {
  const fs::path dir = fs::path(config_path).parent_path();
  const std::string file = resolve_inside(dir.empty() ? "." : dir.string(), cfg.rounded_file, "config rounded_weights");
  const RoundedWeights r = parse_rounded(read_regular_file(file, kMaxWeightsFileBytes, "rounded weights"), file);
  for (const auto* recs : {&r.int8, &r.int4})
    for (const auto& [name, qw] : *recs) {
      auto it = cfg.layers.find(name);
      check(it != cfg.layers.end(), "rounded weights '{}': layer '{}' is not in config '{}'", file, name, config_path);
      const Precision want = qw->bits == 8 ? Precision::int8 : Precision::int4;
      check(it->second.precision == want,
            "rounded weights '{}': layer '{}' has an int{} record but config '{}' says {}", file, name, qw->bits,
            config_path, precision_name(it->second.precision));
      const int64_t g = qw->group == qw->cols ? 0 : qw->group;
      check(want != Precision::int4 || g == it->second.weight_group,
            "rounded weights '{}': layer '{}' has group {} but config '{}' says weight_group {}", file, name, g,
            config_path, it->second.weight_group);
      it->second.weights = qw;
    }
  for (const models::QuantLayer& l : layers) {
    auto it = cfg.layers.find(l.name);
    if (l.weight.empty() || l.kind == models::LayerKind::embedding || it == cfg.layers.end()) continue;
    check(it->second.precision != Precision::int4 || it->second.weights != nullptr,
          "config '{}': layer '{}' is int4, but its rounded weights '{}' hold no int4 record for it (the search "
          "writes one for every int4 layer; without the rounded_weights field every layer rounds to nearest)",
          config_path, l.name, file);
  }
}
}  // namespace

QuantConfig parse_config(std::string_view text, const std::string& what, const std::string& model_name,
                         const std::vector<models::QuantLayer>& layers, const WeightsId* expect) {
  const size_t depth = io::json_nesting_depth(text);
  check(depth <= io::kMaxJsonDepth, "config '{}': JSON nests {} levels deep (limit {})", what, depth,
        io::kMaxJsonDepth);
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  check(!j.is_discarded(), "config '{}': not valid JSON", what);
  return config_from_json(j, what, model_name, layers, expect);
}

QuantConfig load_config(const std::string& path, const std::string& model_name,
                        const std::vector<models::QuantLayer>& layers, const WeightsId* expect) {
  QuantConfig cfg = parse_config(read_text_file(path, kMaxJsonFileBytes, "config"), path, model_name, layers, expect);
  if (!cfg.rounded_file.empty()) attach_rounded(cfg, path, layers);
  return cfg;
}

}  // namespace mpq::quant
