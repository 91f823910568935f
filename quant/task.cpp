#include "quant/task.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <memory>

#include "core/autograd/node.h"
#include "core/error.h"
#include "models/bert.h"
#include "models/data/sst2.h"
#include "models/data/tokenizer.h"
#include "ops/ops.h"
#include "quant/cache.h"
#include "quant/evaluate.h"
#include "quant/fake_quant.h"

namespace mpq::quant {

ImageTaskEvaluator::ImageTaskEvaluator(const data::ImageNetFolder& folder, data::Preset preset, int64_t batch,
                                       int64_t cache_bytes)
    : folder_(folder), preset_(preset), batch_(batch), cache_bytes_(cache_bytes) {
  check(batch > 0, "image evaluator: batch {} must be positive", batch);
}

const data::ImageBatch& ImageTaskEvaluator::batch_for(const std::vector<int64_t>& idx) {
  auto it = cache_.find(idx);
  if (it != cache_.end()) return it->second;
  data::ImageBatch b = folder_.load_batch(idx, preset_);
  const int64_t bytes = int64_t(b.images.nbytes());
  if (cached_bytes_ + bytes > cache_bytes_) return scratch_ = std::move(b);
  cached_bytes_ += bytes;
  return cache_.emplace(idx, std::move(b)).first->second;
}

TaskResult ImageTaskEvaluator::evaluate(models::Model& m, const std::vector<int64_t>& indices) {
  autograd::NoGradGuard no_grad;
  EvalTotals t;
  const int64_t total = int64_t(indices.size());
  for (int64_t b = 0; b < total; b += batch_) {
    const std::vector<int64_t> idx(indices.begin() + b, indices.begin() + std::min(total, b + batch_));
    for (int64_t i : idx) check(i >= 0 && i < size(), "image evaluator: sample index {} outside [0, {})", i, size());
    const data::ImageBatch& ib = batch_for(idx);
    models::Batch mb;
    mb.images = ib.images;  // [n, 3, 224, 224]
    score_logits(m.forward(mb, false), ib.labels, t);
  }
  return {t.top1_frac(), t.mean_loss(), t.samples, std::move(t.top1_hits), t.nonfinite};
}

Tensor ImageTaskEvaluator::outputs(models::Model& m, const std::vector<int64_t>& indices) {
  autograd::NoGradGuard no_grad;
  std::vector<Tensor> parts;
  const int64_t total = int64_t(indices.size());
  for (int64_t b = 0; b < total; b += batch_) {
    const std::vector<int64_t> idx(indices.begin() + b, indices.begin() + std::min(total, b + batch_));
    models::Batch mb;
    mb.images = batch_for(idx).images;      // [n, 3, 224, 224]
    parts.push_back(m.forward(mb, false));  // [n, C]
  }
  check(!parts.empty(), "image evaluator: outputs of an empty index list");
  return parts.size() == 1 ? parts[0] : ops::concat(parts, 0);  // [N, C]
}

models::Batch ImageTaskEvaluator::batch(const std::vector<int64_t>& indices) {
  check(!indices.empty(), "image evaluator: batch of an empty index list");
  const data::ImageBatch& ib = batch_for(indices);
  models::Batch mb;
  mb.images = ib.images;  // [n, 3, 224, 224]
  mb.labels.assign(ib.labels.begin(), ib.labels.end());
  return mb;
}

SentenceTaskEvaluator::SentenceTaskEvaluator(models::EncodedSet set, int64_t batch)
    : set_(std::move(set)), batch_(batch) {
  check(batch > 0, "sentence evaluator: batch {} must be positive", batch);
}

models::Batch SentenceTaskEvaluator::batch(const std::vector<int64_t>& indices) {
  check(!indices.empty(), "sentence evaluator: batch of an empty index list");
  std::vector<size_t> idx;
  for (int64_t i : indices) {
    check(i >= 0 && i < size(), "sentence evaluator: sample index {} outside [0, {})", i, size());
    idx.push_back(size_t(i));
  }
  return models::make_batch(set_, idx);  // ids / mask [n * L], labels [n]
}

TaskResult SentenceTaskEvaluator::evaluate(models::Model& m, const std::vector<int64_t>& indices) {
  autograd::NoGradGuard no_grad;
  EvalTotals t;
  const int64_t total = int64_t(indices.size());
  for (int64_t b = 0; b < total; b += batch_) {
    const models::Batch mb = batch({indices.begin() + b, indices.begin() + std::min(total, b + batch_)});
    score_logits(m.forward(mb, false), {mb.labels.begin(), mb.labels.end()}, t);
  }
  return {t.top1_frac(), t.mean_loss(), t.samples, std::move(t.top1_hits), t.nonfinite};
}

Tensor SentenceTaskEvaluator::outputs(models::Model& m, const std::vector<int64_t>& indices) {
  autograd::NoGradGuard no_grad;
  std::vector<Tensor> parts;
  const int64_t total = int64_t(indices.size());
  for (int64_t b = 0; b < total; b += batch_)
    parts.push_back(m.forward(batch({indices.begin() + b, indices.begin() + std::min(total, b + batch_)}),
                              false));  // [n, C]
  check(!parts.empty(), "sentence evaluator: outputs of an empty index list");
  return parts.size() == 1 ? parts[0] : ops::concat(parts, 0);  // [N, C]
}

namespace {
int64_t size_or(int64_t v, int64_t def) { return v < 0 ? def : v; }
// the split note's word on rounding samples taken from the calibration split (too few others were left)
std::string rounding_overlap(const Splits& s) {
  return s.rounding_from_calib == 0
             ? std::string()
             : fmt::format(", {} of them calibration samples (too few others left)", s.rounding_from_calib);
}
// content identity of a data file (size + head/tail hash; not its path or mtime)
nlohmann::json file_identity(const std::string& path) {
  const WeightsId w = weights_identity(path);
  return {{"size", w.size}, {"hash", w.head_tail_hash}};
}
}  // namespace

Task make_task(models::Model& m, const std::string& weights, const std::string& data_dir, const TaskOptions& opt,
               uint64_t seed) {
  Task t;
  if (auto* bert = dynamic_cast<models::Bert*>(&m)) {
    check(std::filesystem::is_directory(data_dir), "SST-2 folder '{}' does not exist or is not a directory", data_dir);
    const std::string train_path = data_dir + "/train.tsv", dev_path = data_dir + "/dev.tsv";
    // read_sst2 throws naming the file when it is missing, empty or malformed
    std::vector<data::Sst2Example> all = data::read_sst2(train_path);
    const std::vector<data::Sst2Example> dev = data::read_sst2(dev_path);
    const int64_t n_train = int64_t(all.size()), n_dev = int64_t(dev.size());
    all.insert(all.end(), dev.begin(), dev.end());
    const auto tok = data::BertTokenizer::from_file(models::bert_dir_of(weights) + "/vocab.txt");
    t.ev = std::make_unique<SentenceTaskEvaluator>(models::encode_sst2(tok, all, int(bert->config().seq_len)),
                                                   size_or(opt.batch, 64));
    const int64_t n_calib = size_or(opt.calib, 64), n_search = size_or(opt.search, n_dev / 2);
    const int64_t n_test = opt.test == 0 ? -1 : size_or(opt.test, -1);
    check(n_calib <= n_train, "SST-2 '{}': --calib {} exceeds its {} sentences", train_path, n_calib, n_train);
    const Splits c = make_splits(n_train, n_calib, 0, 0, seed, size_or(opt.rounding, 128));
    const Splits d = make_splits(n_dev, 0, n_search, n_test, seed + 1);  // throws when dev is too small
    t.splits.calib = c.calib;
    t.splits.rounding = c.rounding;
    for (int64_t i : d.search) t.splits.search.push_back(n_train + i);
    for (int64_t i : d.test) t.splits.test.push_back(n_train + i);
    t.metric_label = "accuracy";
    t.data_identity = {{"train", file_identity(train_path)}, {"dev", file_identity(dev_path)}};
    t.split_note = fmt::format(
        "calibration: {} sentences of train.tsv (seeded sample; weight rounding {} other ones{}); search {} / test {}: "
        "disjoint seeded pieces of dev.tsv ({} sentences)",
        t.splits.calib.size(), t.splits.rounding.size(), rounding_overlap(c), t.splits.search.size(),
        t.splits.test.size(), n_dev);
    return t;
  }
  auto* cnn = dynamic_cast<models::CnnModel*>(&m);
  check(cnn, "search: model '{}' has no task evaluator (expected an image CNN or bert)", m.name());
  auto folder = std::make_shared<data::ImageNetFolder>(data_dir);  // throws on a folder with no usable samples
  const int64_t total = int64_t(folder->size());
  const int64_t n_test = opt.test == 0 ? -1 : size_or(opt.test, 256);
  t.splits =
      make_splits(total, size_or(opt.calib, 16), size_or(opt.search, 128), n_test, seed, size_or(opt.rounding, 128));
  t.ev = std::make_unique<ImageTaskEvaluator>(*folder, cnn->preset(), size_or(opt.batch, 16));
  t.data = folder;
  t.metric_label = "top-1";
  t.data_identity = {{"labels", file_identity(data_dir + "/labels.txt")}};
  t.split_note = fmt::format(
      "calibration {} / search {} / test {}: disjoint seeded pieces of the {} images; weight rounding {}: images in "
      "none of them{}",
      t.splits.calib.size(), t.splits.search.size(), t.splits.test.size(), total, t.splits.rounding.size(),
      rounding_overlap(t.splits));
  return t;
}

namespace {
// Quantizes only input `operand` of `layer` with `p`; everything else passes through.
struct SingleInputHook : models::LayerHook {
  std::string layer;
  int operand = 0;
  ActQuantParams p;
  Tensor on_input(const std::string& l, int op, const Tensor& x) override {
    return l == layer && op == operand ? fake_quant_act(x, p) : x;
  }
};

double sq_dist(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
  return s;
}
}  // namespace

Calibration calibrate(models::Model& m, TaskEvaluator& ev, const std::vector<int64_t>& indices,
                      const CalibrateOptions& opt) {
  check(!indices.empty(), "calibrate: the calibration split is empty");
  auto hook = std::make_shared<CalibrationHook>(opt.observers);
  {
    ScopedHook scope(m, hook);
    ev.evaluate(m, indices);
  }
  check(!hook->stats().empty(), "calibrate: model '{}' never called its layer hook (not wired?)", m.name());
  Calibration cal = hook->finish();  // proxy choice
  if (opt.select == ObserverSelect::proxy) return cal;
  check(opt.select_samples > 0, "calibrate: select_samples {} must be positive", opt.select_samples);
  const std::vector<int64_t> sel(indices.begin(),
                                 indices.begin() + std::min<int64_t>(opt.select_samples, int64_t(indices.size())));
  const Tensor ref = ev.outputs(m, sel);  // [S, C] fp32 outputs
  auto single = std::make_shared<SingleInputHook>();
  ScopedHook scope(m, single);
  const ObserverKind kinds[] = {ObserverKind::minmax, ObserverKind::percentile, ObserverKind::mse};
  for (auto& [layer, ops] : cal)
    for (auto& [operand, ci] : ops) {
      const ActivationStats& st = hook->stats().at(layer).at(operand);
      single->layer = layer, single->operand = operand;
      ci.error.clear();
      double best = std::numeric_limits<double>::infinity();
      std::vector<std::pair<ActQuantParams, double>> done;
      for (ObserverKind k : kinds) {
        const ActQuantParams p = observe(st, k, opt.observers);
        double e = -1;
        for (const auto& [q, err] : done)
          if (q.scale == p.scale && q.zero_point == p.zero_point) e = err;  // same grid: same outputs
        if (e < 0) {
          single->p = p;
          e = sq_dist(ev.outputs(m, sel), ref);
          done.push_back({p, e});
        }
        ci.error[observer_name(k)] = e;
        if (e < best) best = e, ci.params = p, ci.chosen = k;  // ties keep the earlier (simpler) observer
      }
    }
  return cal;
}

Calibration calibrate_batches(models::Model& m, const std::vector<models::Batch>& batches) {
  auto hook = std::make_shared<CalibrationHook>();
  {
    ScopedHook scoped(m, hook);
    autograd::NoGradGuard ng;
    for (const models::Batch& b : batches) m.forward(b, false);
  }
  return hook->finish();
}

}  // namespace mpq::quant
