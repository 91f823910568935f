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

namespace mpq::cli {

std::unique_ptr<models::Model> load_or_default_model(const Args& args) {
  const std::string name = args.require("model");
  if (args.has("weights")) return models::load_model(name, args.get("weights"));
  return models::default_model(name);
}

models::Batch latency_input(const Args& args, const models::Model& m) {
  return models::latency_input(m, args.get_int("seq", 0, 0, 1 << 20));
}

std::vector<models::Batch> calibration_batches(const Args& args, models::Model& m, const models::Batch& fallback) {
  const int64_t n = args.get_int("calib", 8, 1, INT32_MAX);
  const std::string shared = MPQ_DEFAULT_DATA;
  std::vector<models::Batch> out;
  if (auto* cnn = dynamic_cast<models::CnnModel*>(&m)) {
    const data::ImageNetFolder folder(args.get("calib-data", shared + "/imagenet-val-1300"));
    check(folder.size() > 0, "calibration folder '{}' has no images", args.get("calib-data"));
    // The LAST n images: `mpq eval` counts from the first, so a --limit run stays disjoint from them.
    const int64_t take = std::min<int64_t>(n, int64_t(folder.size()));
    const data::ImageBatch b = folder.load_range(int64_t(folder.size()) - take, take, cnn->preset());
    models::Batch batch;
    batch.images = b.images;  // [n, 3, 224, 224]
    out.push_back(std::move(batch));
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
  label = precision_name(p);
  quant::Calibration calib;
  if (precision_is_integer(p)) calib = quant::calibrate_batches(m, calibration_batches(args, m, fallback));
  return quant::uniform_assignment(m, p, calib, group);
}

}  // namespace mpq::cli
