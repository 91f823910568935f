#include "quant/task.h"

#include <algorithm>
#include <limits>
#include <memory>

#include "core/autograd/node.h"
#include "core/error.h"
#include "ops/ops.h"
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
  return {t.top1_frac(), t.mean_loss(), t.samples};
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

}  // namespace mpq::quant
