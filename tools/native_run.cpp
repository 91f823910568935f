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
  if (name == "resnet50" || name == "mobilenetv2") {
    std::unique_ptr<models::CnnModel> m = name == "resnet50"
                                              ? models::make_resnet50(models::ResNetLayout::torchvision)
                                              : models::make_mobilenetv2(models::MobileNetLayout::torchvision);
    models::formula_init(*m);
    return m;
  }
  if (name == "bert") {
    models::BertConfig c;
    c.vocab_size = 30522;
    c.hidden = 768;
    c.layers = 12;
    c.heads = 12;
    c.ffn = 3072;
    auto m = std::make_unique<models::Bert>(c);
    m->init_random(0);
    return m;
  }
  fail("unknown model '{}' (expected resnet50, mobilenetv2 or bert)", name);
}

models::Batch latency_input(const Args& args, const models::Model& m) {
  models::Batch batch;
  if (dynamic_cast<const models::CnnModel*>(&m) != nullptr) {
    batch.images = models::formula_input(1, 224, 224);  // [1, 3, 224, 224]
    return batch;
  }
  const auto* bert = dynamic_cast<const models::Bert*>(&m);
  check(bert != nullptr, "latency input: model '{}' is neither a CNN nor BERT", m.name());
  const int64_t seq = args.get_int("seq", int(bert->config().seq_len));
  check(seq > 0 && seq <= bert->config().max_pos, "--seq must be in [1, {}] (max_position_embeddings), got {}",
        bert->config().max_pos, seq);
  batch.seq_len = seq;
  for (int64_t i = 0; i < seq; ++i) {
    batch.ids.push_back(int32_t(i == 0 ? 2 : 5 + (i * 7919) % 1000));  // [1, L], no padding
    batch.mask.push_back(1);
  }
  return batch;
}

std::vector<models::Batch> calibration_batches(const Args& args, models::Model& m, const models::Batch& fallback) {
  const int n = args.get_int("calib", 8);
  check(n > 0, "--calib must be positive, got {}", n);
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

quant::Calibration calibrate_batches(models::Model& m, const std::vector<models::Batch>& batches) {
  auto hook = std::make_shared<quant::CalibrationHook>();
  {
    quant::ScopedHook scoped(m, hook);
    autograd::NoGradGuard ng;
    for (const models::Batch& b : batches) m.forward(b, false);
  }
  return hook->finish();
}

Assignment uniform_assignment(const models::Model& m, Precision p, const quant::Calibration& calib,
                              int64_t int4_group) {
  std::vector<std::string> names;
  for (const models::QuantLayer& l : m.quant_layers()) names.push_back(l.name);
  return quant::make_assignment(names, std::vector<Precision>(names.size(), p), calib, int4_group);
}

Assignment requested_assignment(const Args& args, models::Model& m, const models::Batch& fallback, std::string& label) {
  check(!(args.has("config") && args.has("precision")), "give either --config or --precision, not both");
  if (args.has("config")) {
    const std::string path = args.get("config");
    std::optional<quant::WeightsId> wid;
    if (args.has("weights")) wid = quant::weights_identity(args.get("weights"));
    const quant::QuantConfig cfg = quant::load_config(path, m.name(), m.quant_layers(), wid ? &*wid : nullptr);
    label = path;
    return cfg.layers;
  }
  const Precision p = parse_precision(args.get("precision", "fp32"));
  const int64_t group = args.get_int("int4-group", 0);
  check(group == 0 || group == 32 || group == 64 || group == 128, "--int4-group must be 0, 32, 64 or 128, got {}",
        group);
  label = precision_name(p);
  quant::Calibration calib;
  if (precision_is_integer(p)) calib = calibrate_batches(m, calibration_batches(args, m, fallback));
  return uniform_assignment(m, p, calib, group);
}

Stats stats_of(std::vector<double> v) {
  check(!v.empty(), "stats_of: no samples");
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return {v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]), v.front(), v.back()};
}

Stats time_runs(const std::function<Tensor()>& run, int warmup, int runs) {
  for (int i = 0; i < warmup; ++i) run();
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const Tensor out = run();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return stats_of(std::move(ms));
}

nlohmann::json measure_latency_table(models::Model& m, const std::vector<Precision>& precisions,
                                     const quant::Calibration& calib, int64_t int4_group, const models::Batch& input,
                                     int warmup, int runs, bool progress) {
  check(runs > 0 && warmup >= 0, "latency table: runs must be positive and warmup non-negative");
  std::set<std::string> quant_names;
  for (const models::QuantLayer& l : m.quant_layers()) quant_names.insert(l.name);
  nlohmann::json layers = nlohmann::json::object(), other = nlohmann::json::object(), e2e = nlohmann::json::object(),
                 bytes = nlohmann::json::object(), impls = nlohmann::json::object();
  for (Precision p : precisions) {
    const std::string pn = precision_name(p);
    if (progress) fmt::print(stderr, "[profile {}] compiling {}\n", m.name(), pn);
    const auto nm = native::compile(m, uniform_assignment(m, p, calib, int4_group));
    std::map<std::string, std::vector<double>> per_step;  // layer -> ms per timed run
    std::vector<double> other_ms, total_ms;               // per timed run
    for (int r = 0; r < warmup + runs; ++r) {
      std::vector<native::StepTime> steps;
      const auto t0 = std::chrono::steady_clock::now();
      nm->run_profiled(input, steps);
      const double total = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (r < warmup) continue;
      double rest = 0;
      for (const native::StepTime& s : steps) {
        if (s.quant_layer)
          per_step[s.name].push_back(s.ms);
        else
          rest += s.ms;
      }
      other_ms.push_back(rest);
      total_ms.push_back(total);
      if (progress)
        fmt::print(stderr, "\r[profile {} {}] run {}/{}  {:.2f} ms   ", m.name(), pn, r - warmup + 1, runs, total);
    }
    if (progress) fmt::print(stderr, "\n");
    for (const std::string& name : quant_names) {
      auto it = per_step.find(name);
      check(it != per_step.end(), "profile: the native {} run reported no time for layer '{}'", pn, name);
      layers[name][pn] = stats_of(it->second).median;
    }
    other[pn] = stats_of(other_ms).median;
    e2e[pn] = stats_of(total_ms).median;
    bytes[pn] = nm->weight_bytes();
    impls[pn] = nm->implementations();
  }
  return {{"source", fmt::format("mpq profile: {} batch 1, median of {} warm runs per layer, {} threads, ISA cap {}",
                                 m.name(), runs, num_threads(), isa_name(isa_cap()))},
          {"measured", true},
          {"model", m.name()},
          {"threads", num_threads()},
          {"runs", runs},
          {"layers", layers},
          {"other_ms", other},
          {"end_to_end_ms", e2e},
          {"weight_bytes", bytes},
          {"implementations", impls}};
}

Stats measure_assignment(models::Model& m, const Assignment& a, const models::Batch& input, int warmup, int runs) {
  const auto nm = native::compile(m, a);
  return time_runs([&] { return nm->run(input); }, warmup, runs);
}

}  // namespace mpq::cli
