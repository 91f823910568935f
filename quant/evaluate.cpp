#include "quant/evaluate.h"

#include <algorithm>
#include <cmath>

#include "core/autograd/node.h"
#include "core/error.h"

namespace mpq::quant {

void score_logits(const Tensor& logits_in, const std::vector<int>& labels, EvalTotals& t) {
  const Tensor logits = logits_in.contiguous();
  if (!(logits.dim() == 2 && logits.size(0) == int64_t(labels.size())))
    fail("eval: logits {} for {} labels", shape_str(logits.shape()), labels.size());
  const int64_t n = logits.size(0), c = logits.size(1);
  const float* p = logits.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const float* row = p + i * c;  // [C]
    const int label = labels[size_t(i)];
    check(label >= 0 && label < c, "eval: label {} out of range for {} model outputs", label, c);
    bool finite = true;
    for (int64_t j = 0; j < c; ++j) finite = finite && std::isfinite(row[j]);
    ++t.samples;
    if (!finite) {
      ++t.nonfinite;
      t.top1_hits += '0';
      continue;
    }
    const float target = row[label];
    int64_t greater = 0;
    double mx = row[0];
    for (int64_t j = 0; j < c; ++j) {
      greater += row[j] > target;
      mx = std::max(mx, double(row[j]));
    }
    double se = 0;
    for (int64_t j = 0; j < c; ++j) se += std::exp(double(row[j]) - mx);
    t.loss_sum += mx + std::log(se) - double(target);
    t.top1 += greater == 0;
    t.top1_hits += greater == 0 ? '1' : '0';
    t.top5 += greater < 5;
  }
}

EvalTotals evaluate_images(models::Model& model, data::Preset preset, const data::ImageNetFolder& folder,
                           const std::vector<int64_t>& indices, int64_t batch,
                           const std::function<void(int64_t, int64_t, const EvalTotals&)>& progress) {
  check(batch > 0, "eval: batch must be positive, got {}", batch);
  autograd::NoGradGuard no_grad;
  EvalTotals t;
  const int64_t total = int64_t(indices.size());
  for (int64_t b = 0; b < total; b += batch) {
    const std::vector<int64_t> idx(indices.begin() + b, indices.begin() + std::min(total, b + batch));
    data::ImageBatch ib = folder.load_batch(idx, preset);
    models::Batch mb;
    mb.images = ib.images;  // [n, 3, 224, 224]
    score_logits(model.forward(mb, false), ib.labels, t);
    if (progress) progress(t.samples, total, t);
  }
  return t;
}

}  // namespace mpq::quant
