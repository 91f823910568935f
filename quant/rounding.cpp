#include "quant/rounding.h"

#include <fmt/format.h>

#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"
#include "models/io/safetensors.h"
#include "quant/gptq_model.h"

namespace mpq::quant {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The recipe behind WeightRounding::gptq, for one bit width. Chosen by measurement (docs/method.md, the
// `mpq gptq-exp` table): GPTQ with bias correction, the per-channel least-squares rescale and the output-error
// scale search; depthwise rows rounded exhaustively; at 4 bits with per-channel scales, act order (columns by
// descending H_kk): there the scales do not depend on the column order. With groups act order needs static
// group scales, which measured worse on the whole network (MobileNetV2 g128: -10 of 1172 images) but wins
// some rows of every layer, so grouped int4 rounds each row in both orders and keeps the one of least output
// error (order_search; ResNet50 g128 79.27 % -> 80.80 %, README). Bump kRecipeVersion when it changes (cache
// key): version 3 added the order search, version 4 the low-rank dampening.
constexpr int kRecipeVersion = 4;
ModelRoundingOptions gptq_recipe(const RoundingRequest& req, int bits) {
  ModelRoundingOptions o;
  o.layer.bits = bits;
  o.layer.group = bits == 4 ? req.int4_group : 0;
  o.layer.rounding = Rounding::gptq;
  o.layer.act_order = bits == 4 && o.layer.group == 0;
  o.layer.order_search = bits == 4 && o.layer.group > 0;
  // layers with fewer calibration rows than inputs (the classifiers: one row per image) get 100 % dampening:
  // ResNet50's classifier alone at int4 scored 79.95 / 79.86 / 80.29 % at 1 / 10 / 100 % (fp32 80.46 %,
  // gptq-exp split), the whole network per channel 78.92 -> 79.44 %, MobileNetV2 76.71 -> 76.62 % (loss lower)
  o.layer.low_rank_damp = bits == 4 ? 1.0 : 0.0;
  o.layer.bias_correction = true;
  o.layer.rescale = true;
  o.layer.search = ScaleSearch::output;
  o.depthwise_exhaustive = true;
  o.capture.max_positions = req.max_positions;
  o.quantize_inputs = true;
  // embedding tables have no inputs: round-to-nearest at compile time
  o.only = [](const models::QuantLayer& l) { return l.kind != models::LayerKind::embedding; };
  return o;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

void RoundingRequest::validate() const {
  check(int4_group == 0 || int4_group == 32 || int4_group == 64 || int4_group == 128,
        "weight rounding: int4 group {} (expected 0, 32, 64 or 128)", int4_group);
  check(max_positions >= 0, "weight rounding: max_positions {} is negative", max_positions);
}

json rounding_settings(const RoundingRequest& req) {
  return {{"what", "weight rounding"},          {"method", enum_name(kWeightRoundingNames, req.method)},
          {"int4_group", req.int4_group},       {"int8", req.int8},
          {"max_positions", req.max_positions}, {"recipe", kRecipeVersion}};
}

RoundedWeights round_weights(models::Model& m, const std::vector<models::Batch>& calib, const Calibration& act,
                             const RoundingRequest& req, RoundingReport* report,
                             const std::function<void(const std::string&)>& log) {
  req.validate();
  RoundedWeights out;
  if (req.method == WeightRounding::nearest) return out;
  const ModelRoundingOptions o4 = gptq_recipe(req, 4);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<models::QuantLayer> layers;
  for (const models::QuantLayer& l : weight_layers(m))
    if (o4.only(l)) layers.push_back(l);
  auto inner = std::make_shared<RoundedWeightsHook>(act, true);  // float weights, uint8 inputs
  const CapturedLayers cap = capture_layers(m, calib, layers, inner, o4.capture, o4.max_capture_bytes);
  if (report) report->capture_seconds = seconds_since(t0);
  if (log)
    log(fmt::format("weight rounding: statistics of {} layers captured in {:.1f} s", layers.size(), seconds_since(t0)));
  for (const int bits : {4, 8}) {
    if (bits == 8 && !req.int8) continue;
    const RoundedModel rm = round_model(m, calib, act, gptq_recipe(req, bits), &cap);
    restore_biases(m, rm);  // the corrections stay in the records (applied by on_bias / the native packing)
    auto& dst = bits == 4 ? out.int4 : out.int8;
    for (const auto& [name, qw] : rm.weights) dst[name] = std::make_shared<const QuantizedWeight>(qw);
    if (report) {
      for (const auto& [name, e] : rm.output_error) report->output_error[fmt::format("int{}/{}", bits, name)] = e;
      report->notes.insert(report->notes.end(), rm.notes.begin(), rm.notes.end());
      report->rounding_seconds += rm.rounding_seconds;
    }
    if (log)
      log(fmt::format("weight rounding: int{} records of {} layers in {:.1f} s", bits, rm.weights.size(),
                      rm.rounding_seconds));
  }
  return out;
}

std::vector<uint8_t> serialize_rounded(const RoundedWeights& r, const std::map<std::string, std::string>& metadata) {
  io::TensorMap t;
  std::map<std::string, std::string> meta = metadata;
  for (const auto* recs : {&r.int8, &r.int4})
    for (const auto& [name, qw] : *recs) {
      const std::string base = fmt::format("int{}/{}", qw->bits, name);
      Tensor q = Tensor::empty({qw->rows, qw->cols}, DType::i8);  // [O, K]
      std::copy(qw->q.begin(), qw->q.end(), q.data<int8_t>());
      Tensor s = Tensor::empty({qw->rows, qw->cols / qw->group});  // [O, K / G]
      std::copy(qw->scale.begin(), qw->scale.end(), s.data<float>());
      t.insert(base + "/q", q);
      t.insert(base + "/scale", s);
      if (!qw->bias_correction.empty()) {
        Tensor b = Tensor::empty({qw->rows});  // [O]
        std::copy(qw->bias_correction.begin(), qw->bias_correction.end(), b.data<float>());
        t.insert(base + "/bias_correction", b);
      }
      meta[base] = std::to_string(qw->group);
    }
  return io::serialize_safetensors(t, meta);
}

RoundedWeights parse_rounded(const std::vector<uint8_t>& bytes, const std::string& file,
                             std::map<std::string, std::string>* metadata) {
  const io::SafetensorsFile f = io::parse_safetensors(bytes, file);
  RoundedWeights out;
  for (const auto& [key, group_text] : f.metadata) {
    const bool is4 = key.rfind("int4/", 0) == 0, is8 = key.rfind("int8/", 0) == 0;
    if (!is4 && !is8) continue;
    const std::string layer = key.substr(5);
    const io::TensorMap& t = f.tensors;
    const Tensor* q = t.find(key + "/q");
    const Tensor* s = t.find(key + "/scale");
    check(q && s, "rounded weights '{}': record '{}' lacks its q or scale tensor", file, key);
    check(q->dtype() == DType::i8 && q->dim() == 2 && s->dtype() == DType::f32 && s->dim() == 2 &&
              s->size(0) == q->size(0),
          "rounded weights '{}': record '{}' has q {} {} and scale {} {}", file, key, dtype_name(q->dtype()),
          shape_str(q->shape()), dtype_name(s->dtype()), shape_str(s->shape()));
    auto qw = std::make_shared<QuantizedWeight>();
    qw->rows = q->size(0), qw->cols = q->size(1), qw->bits = is4 ? 4 : 8;
    char* end = nullptr;
    const long long g = std::strtoll(group_text.c_str(), &end, 10);
    check(end && *end == '\0' && !group_text.empty() && g > 0 && g <= qw->cols && qw->cols % g == 0 &&
              s->size(1) == qw->cols / g,
          "rounded weights '{}': record '{}' has group '{}' for {} columns and {} scales per row", file, key,
          group_text, qw->cols, s->size(1));
    qw->group = g;
    qw->q.assign(q->data<int8_t>(), q->data<int8_t>() + q->numel());
    qw->scale.assign(s->data<float>(), s->data<float>() + s->numel());
    if (const Tensor* b = t.find(key + "/bias_correction")) {
      check(b->dtype() == DType::f32 && b->numel() == qw->rows,
            "rounded weights '{}': record '{}' has {} bias corrections for {} rows", file, key, b->numel(), qw->rows);
      qw->bias_correction.assign(b->data<float>(), b->data<float>() + b->numel());
    }
    qw->validate(fmt::format("{} in '{}'", key, file));
    (is4 ? out.int4 : out.int8)[layer] = std::move(qw);
  }
  if (metadata) *metadata = f.metadata;
  return out;
}

RoundedWeights cached_round_weights(const AnalysisCache& cache, const json& inputs, models::Model& m,
                                    const std::vector<models::Batch>& calib, const Calibration& act,
                                    const RoundingRequest& req, bool* hit,
                                    const std::function<void(const std::string&)>& log) {
  if (hit) *hit = false;
  if (req.method == WeightRounding::nearest) return {};
  std::string path;
  if (!cache.dir().empty()) {
    path = (fs::path(cache.dir()) / ("rounding-" + analysis_key(inputs) + ".safetensors")).string();
    std::error_code ec;
    if (fs::exists(path, ec)) {
      try {
        std::map<std::string, std::string> meta;
        RoundedWeights r = parse_rounded(read_regular_file(path, uint64_t(8) << 30, "rounded weights"), path, &meta);
        if (meta["inputs"] == inputs.dump()) {
          if (hit) *hit = true;
          return r;
        }
        if (log) log(fmt::format("weight rounding: cache entry '{}' was made for other inputs: recomputing", path));
      } catch (const std::exception& e) {
        const std::string msg = fmt::format(
            "analysis cache: entry '{}' is damaged ({}); recomputing it and overwriting the entry", path, e.what());
        if (cache.warn()) cache.warn()(msg);
        if (log) log(msg);
      }
    }
  }
  RoundedWeights r = round_weights(m, calib, act, req, nullptr, log);
  if (!path.empty()) {
    create_output_dir(cache.dir());
    write_file_atomic(path, serialize_rounded(r, {{"inputs", inputs.dump()}}));
  }
  return r;
}

}  // namespace mpq::quant
