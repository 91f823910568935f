#include "models/bert_train.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>

#include "core/autograd/engine.h"
#include "core/autograd/node.h"
#include "core/error.h"
#include "models/optim.h"
#include "ops/ops.h"

namespace mpq::models {

namespace {
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

EncodedSet encode_sst2(const data::BertTokenizer& tok, const std::vector<data::Sst2Example>& ex, int max_len) {
  EncodedSet s;
  for (const auto& e : ex) {
    s.ids.push_back(tok.encode(e.sentence, max_len, false).ids);
    s.labels.push_back(e.label);
  }
  return s;
}

Batch make_batch(const EncodedSet& set, const std::vector<size_t>& idx) {
  size_t L = 1;
  for (size_t i : idx) L = std::max(L, set.ids[i].size());
  Batch b;
  b.seq_len = int64_t(L);
  b.ids.assign(idx.size() * L, 0);   // [N * L]
  b.mask.assign(idx.size() * L, 0);  // [N * L]
  for (size_t r = 0; r < idx.size(); ++r) {
    const auto& row = set.ids[idx[r]];
    for (size_t j = 0; j < row.size(); ++j) {
      b.ids[r * L + j] = row[j];
      b.mask[r * L + j] = 1;
    }
    b.labels.push_back(set.labels[idx[r]]);
  }
  return b;
}

EvalResult evaluate(Bert& model, const EncodedSet& set, int batch_size) {
  autograd::NoGradGuard ng;
  check(batch_size > 0, "evaluate: batch size must be positive, got {}", batch_size);
  const double t0 = now_s();
  EvalResult r;
  double loss_sum = 0.0;
  int64_t correct = 0;
  for (size_t s = 0; s < set.size(); s += size_t(batch_size)) {
    std::vector<size_t> idx;
    for (size_t i = s; i < std::min(set.size(), s + size_t(batch_size)); ++i) idx.push_back(i);
    const Batch b = make_batch(set, idx);
    const Tensor logits = model.forward(b, false);  // [N, C]
    loss_sum += double(ops::cross_entropy(logits, b.labels).item()) * double(idx.size());
    const int64_t C = logits.size(1);
    const float* pl = logits.data<float>();
    for (size_t r = 0; r < idx.size(); ++r) {
      const float* row = pl + r * size_t(C);
      const int64_t pred = std::max_element(row, row + C) - row;
      correct += pred == b.labels[r];
    }
  }
  r.samples = int64_t(set.size());
  r.accuracy = r.samples ? double(correct) / double(r.samples) : 0.0;
  r.loss = r.samples ? loss_sum / double(r.samples) : 0.0;
  r.seconds = now_s() - t0;
  return r;
}

TrainResult train_bert(Bert& model, const EncodedSet& train, const EncodedSet* dev, const TrainOptions& o) {
  check(train.size() > 0 && o.batch > 0 && o.epochs > 0, "train_bert: empty data or bad batch/epochs");
  auto named = model.parameters();
  std::vector<Tensor*> params;
  std::vector<bool> decay;
  for (auto& [name, t] : named) {
    t->set_requires_grad(true);
    params.push_back(t);
    decay.push_back(optim::decays(name));
  }
  optim::AdamW opt(params, decay, {o.lr, 0.9f, 0.999f, 1e-8f, o.weight_decay});
  const int64_t steps_per_epoch = int64_t((train.size() + size_t(o.batch) - 1) / size_t(o.batch));
  int64_t total = steps_per_epoch * o.epochs;
  if (o.max_steps > 0) total = std::min(total, o.max_steps);
  const int64_t warmup = int64_t(double(o.warmup) * double(total));
  std::mt19937_64 rng(o.seed);
  model.set_dropout_seed(o.seed * 1000003 + 7);

  TrainResult res;
  const double t0 = now_s();
  int64_t step = 0, seen = 0;
  double run_loss = 0.0;
  for (int ep = 0; ep < o.epochs && step < total; ++ep) {
    // shuffle, then sort chunks of 50 batches by length (less padding), then shuffle the batches
    std::vector<size_t> order(train.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::shuffle(order.begin(), order.end(), rng);
    const size_t chunk = size_t(o.batch) * 50;
    for (size_t s = 0; s < order.size(); s += chunk) {
      auto e = order.begin() + std::ptrdiff_t(std::min(order.size(), s + chunk));
      std::stable_sort(order.begin() + std::ptrdiff_t(s), e,
                       [&](size_t a, size_t b) { return train.ids[a].size() < train.ids[b].size(); });
    }
    std::vector<std::vector<size_t>> batches;
    for (size_t s = 0; s < order.size(); s += size_t(o.batch))
      batches.emplace_back(order.begin() + std::ptrdiff_t(s),
                           order.begin() + std::ptrdiff_t(std::min(order.size(), s + size_t(o.batch))));
    std::shuffle(batches.begin(), batches.end(), rng);

    for (const auto& idx : batches) {
      if (step >= total) break;
      const Batch b = make_batch(train, idx);
      const Tensor logits = model.forward(b, true);  // [N, C]
      const Tensor loss = ops::cross_entropy(logits, b.labels);
      opt.zero_grad();
      autograd::backward(loss);
      if (o.clip > 0.0f) optim::clip_grad_norm(params, o.clip);
      const float lr = o.lr * optim::linear_warmup_decay(step + 1, warmup, total);
      opt.step(lr);
      const float lv = loss.item();
      res.step_losses.push_back(lv);
      run_loss = step == 0 ? lv : 0.98 * run_loss + 0.02 * lv;
      ++step;
      seen += int64_t(idx.size());
      if (o.progress && (step % 20 == 0 || step == total)) {
        const double el = now_s() - t0, eps = double(seen) / el;
        const double eta = el / double(step) * double(total - step);
        fmt::print(stderr, "epoch {}/{} step {}/{} loss {:.4f} lr {:.2e} {:.1f} ex/s elapsed {:.0f}s ETA {:.0f}s\n",
                   ep + 1, o.epochs, step, total, run_loss, lr, eps, el, eta);
      }
    }
    if (dev) {
      const EvalResult r = evaluate(model, *dev);
      res.dev.push_back(r);
      if (o.progress)
        fmt::print(stderr, "epoch {}: dev accuracy {:.2f}% loss {:.4f} ({} samples, {:.1f}s)\n", ep + 1,
                   100.0 * r.accuracy, r.loss, r.samples, r.seconds);
    }
  }
  for (Tensor* p : params) {
    p->zero_grad();
    p->set_requires_grad(false);
  }
  res.seconds = now_s() - t0;
  return res;
}

}  // namespace mpq::models
