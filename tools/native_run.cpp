#include "tools/native_run.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include "core/autograd/node.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/threading.h"
#include "models/bert.h"
#include "models/bert_train.h"
#include "models/cnn_common.h"
#include "models/data/imagenet.h"
#include "models/mobilenetv2.h"
#include "models/resnet50.h"
#include "models/zoo.h"
#include "quant/config.h"
#include "quant/observers.h"
#include "quant/rounding.h"

namespace mpq::cli {

std::unique_ptr<models::Model> load_or_default_model(const Args& args) {
  const std::string name = args.require("model");
  if (args.has("weights")) return models::load_model(name, args.get("weights"));
  return models::default_model(name);
}

models::Batch latency_input(const Args& args, const models::Model& m) {
  return models::latency_input(m, args.get_int("seq", 0, 0, 1 << 20));
}

std::vector<models::Batch> calibration_batches(const Args& args, models::Model& m, const models::Batch& fallback,
                                               const std::string& count_flag, int64_t count_default, int64_t chunk) {
  const int64_t n = args.get_int(count_flag, count_default, 1, INT32_MAX);
  const std::string shared = MPQ_DEFAULT_DATA;
  std::vector<models::Batch> out;
  if (auto* cnn = dynamic_cast<models::CnnModel*>(&m)) {
    const data::ImageNetFolder folder(args.get("calib-data", shared + "/imagenet-val-1300"));
    check(folder.size() > 0, "calibration folder '{}' has no images", args.get("calib-data"));
    // The LAST n images: `mpq eval` counts from the first, so a --limit run stays disjoint from them.
    const int64_t take = std::min<int64_t>(n, int64_t(folder.size())), step = chunk > 0 ? chunk : take;
    for (int64_t b0 = 0; b0 < take; b0 += step) {
      const int64_t cnt = std::min(step, take - b0);
      models::Batch batch;
      batch.images =
          folder.load_range(int64_t(folder.size()) - take + b0, cnt, cnn->preset()).images;  // [cnt, 3, H, W]
      out.push_back(std::move(batch));
    }
    return out;
  }
  auto* bert = dynamic_cast<models::Bert*>(&m);
  const std::string vocab = args.has("weights") ? models::bert_dir_of(args.get("weights")) + "/vocab.txt" : "";
  if (bert != nullptr && !vocab.empty() && std::filesystem::exists(vocab)) {
    const auto tok = data::BertTokenizer::from_file(vocab);
    auto ex = data::read_sst2(args.get("calib-data", shared + "/sst2") + "/train.tsv");
    ex.resize(std::min(ex.size(), size_t(n)));
    const auto set = models::encode_sst2(tok, ex, int(bert->config().seq_len));
    for (size_t i = 0; i < set.size(); ++i) out.push_back(models::make_batch(set, {i}));
    return out;
  }
  out.push_back(fallback);  // random-weight BERT-base: no vocabulary, calibrate on the latency input
  return out;
}

int64_t int4_group_option(const Args& args) {
  const int64_t g = args.get_int("int4-group", 0, 0, 128);
  usage_check(g == 0 || g == 32 || g == 64 || g == 128, "--int4-group must be 0, 32, 64 or 128, got {}", g);
  return g;
}

quant::WeightRounding rounding_option(const Args& args) {
  const std::string v = args.get_choice("rounding", "gptq", {"nearest", "gptq"});
  return parse_enum(quant::kWeightRoundingNames, v, "rounding");
}

Precision precision_option(const Args& args, const std::string& key, const std::string& def) {
  try {
    return parse_precision(args.get(key, def));
  } catch (const Error& e) {
    throw UsageError(fmt::format("--{}: {}", key, e.what()));
  }
}

Assignment requested_assignment(const Args& args, models::Model& m, const models::Batch& fallback, std::string& label) {
  usage_check(!(args.has("config") && args.has("precision")), "give either --config or --precision, not both");
  if (args.has("config")) {
    const std::string path = args.get("config");
    std::optional<quant::WeightsId> wid;
    if (args.has("weights")) wid = quant::weights_identity(args.get("weights"));
    const quant::QuantConfig cfg = quant::load_config(path, m.name(), m.quant_layers(), wid ? &*wid : nullptr);
    label = path;
    return cfg.layers;
  }
  const Precision p = precision_option(args, "precision", "fp32");
  const int64_t group = int4_group_option(args);
  // int8 rounds to nearest unless --rounding says otherwise (quant/rounding.h RoundingRequest::int8)
  const quant::WeightRounding rounding =
      p == Precision::int8 && !args.has("rounding") ? quant::WeightRounding::nearest : rounding_option(args);
  label = precision_name(p);
  if (!precision_is_integer(p)) return quant::uniform_assignment(m, p, {}, group);
  const quant::Calibration calib = quant::calibrate_batches(m, calibration_batches(args, m, fallback));
  RoundedWeights rounded;
  if (rounding != quant::WeightRounding::nearest) {
    quant::RoundingRequest rr;
    rr.method = rounding;
    rr.int4_group = group;
    rr.int8 = p == Precision::int8;
    const auto batches = calibration_batches(args, m, fallback, "rounding-calib", 128, 16);
    rounded = quant::round_weights(m, batches, calib, rr);
    label += fmt::format(" ({} rounding)", enum_name(quant::kWeightRoundingNames, rounding));
  }
  return quant::uniform_assignment(m, p, calib, group, &rounded);
}

}  // namespace mpq::cli
