// AdamW (decoupled weight decay, Loshchilov & Hutter; PyTorch torch.optim.AdamW semantics) and the linear
// warm-up / linear decay learning-rate schedule (HF get_linear_schedule_with_warmup).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace mpq::optim {

struct AdamWOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float weight_decay = 0.01f;
};

class AdamW {
 public:
  // decay[i] says whether params[i] gets weight decay (HF recipe: not biases, not LayerNorm weights).
  AdamW(std::vector<Tensor*> params, std::vector<bool> decay, AdamWOptions opts);
  // One update with learning rate `lr` from each parameter's .grad (parameters without a grad are skipped):
  //   p -= lr * wd * p  (decoupled);  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
  //   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
  void step(float lr);
  void zero_grad();
  int64_t steps() const { return t_; }

 private:
  std::vector<Tensor*> params_;
  std::vector<bool> decay_;
  std::vector<Tensor> m_, v_;  // same shapes as params
  AdamWOptions opts_;
  int64_t t_ = 0;
};

// Scales all gradients so that their global L2 norm is at most max_norm; returns the norm before clipping.
float clip_grad_norm(const std::vector<Tensor*>& params, float max_norm);

// lr multiplier: step / warmup for step < warmup, then linearly down to 0 at total.
float linear_warmup_decay(int64_t step, int64_t warmup, int64_t total);

// The HF decay rule for a parameter name: false for "*.bias" and anything with "LayerNorm" in its name.
bool decays(const std::string& name);

}  // namespace mpq::optim
