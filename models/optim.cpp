#include "models/optim.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace mpq::optim {

AdamW::AdamW(std::vector<Tensor*> params, std::vector<bool> decay, AdamWOptions opts)
    : params_(std::move(params)), decay_(std::move(decay)), opts_(opts) {
  check(params_.size() == decay_.size(), "AdamW: {} params but {} decay flags", params_.size(), decay_.size());
  for (Tensor* p : params_) {
    if (!(p->dtype() == DType::f32 && p->is_contiguous()))
      fail("AdamW: parameters must be contiguous f32, got {} {}", dtype_name(p->dtype()), shape_str(p->shape()));
    m_.push_back(Tensor::zeros(p->shape()));  // same shape as p
    v_.push_back(Tensor::zeros(p->shape()));  // same shape as p
  }
}

void AdamW::step(float lr) {
  ++t_;
  const float b1 = opts_.beta1, b2 = opts_.beta2, eps = opts_.eps;
  const float c1 = 1.0f - std::pow(b1, float(t_)), c2 = 1.0f - std::pow(b2, float(t_));
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = *params_[i];
    if (!p.grad().defined()) continue;
    const Tensor g = p.grad().contiguous();
    if (!(g.shape() == p.shape()))
      fail("AdamW: grad {} does not match parameter {}", shape_str(g.shape()), shape_str(p.shape()));
    float* w = p.data<float>();         // [numel]
    const float* gd = g.data<float>();  // [numel]
    float* m = m_[i].data<float>();     // [numel]
    float* v = v_[i].data<float>();     // [numel]
    const float wd = decay_[i] ? lr * opts_.weight_decay : 0.0f;
    const int64_t n = p.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t j = 0; j < n; ++j) {
      w[j] -= wd * w[j];
      m[j] = b1 * m[j] + (1.0f - b1) * gd[j];
      v[j] = b2 * v[j] + (1.0f - b2) * gd[j] * gd[j];
      w[j] -= lr * (m[j] / c1) / (std::sqrt(v[j] / c2) + eps);
    }
  }
}

void AdamW::zero_grad() {
  for (Tensor* p : params_) p->zero_grad();
}

float clip_grad_norm(const std::vector<Tensor*>& params, float max_norm) {
  double ss = 0.0;
  for (Tensor* p : params) {
    if (!p->grad().defined()) continue;
    const Tensor g = p->grad().contiguous();  // same shape as p
    const float* d = g.data<float>();
    for (int64_t j = 0; j < g.numel(); ++j) ss += double(d[j]) * double(d[j]);
  }
  const float norm = float(std::sqrt(ss));
  if (norm > max_norm) {
    const float s = max_norm / (norm + 1e-6f);
    for (Tensor* p : params) {
      if (!p->grad().defined()) continue;
      Tensor g = p->grad().clone();  // same shape as p (a copy: grads may share storage)
      float* d = g.data<float>();
      for (int64_t j = 0; j < g.numel(); ++j) d[j] *= s;
      p->mutable_grad() = g;
    }
  }
  return norm;
}

float linear_warmup_decay(int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup) return float(step) / float(std::max<int64_t>(1, warmup));
  return std::max(0.0f, float(total - step) / float(std::max<int64_t>(1, total - warmup)));
}

bool decays(const std::string& name) {
  return !(name.ends_with(".bias") || name.find("LayerNorm") != std::string::npos);
}

}  // namespace mpq::optim
