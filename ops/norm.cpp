// Batch normalisation (NCHW, per channel) and layer normalisation (last dim).
//
// Training-mode batch norm is one node with fused OpenMP forward/backward kernels; under create_graph its
// backward is built from differentiable ops instead (see BatchNormTrainNode), so HVPs stay exact.
// Layer norm follows the same scheme (LayerNormNode). Eval-mode batch norm is an affine map with constant
// statistics, composed from differentiable ops when recording and a fused kernel otherwise.
// The tests check every path against naive loops, finite differences and each other.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/autograd/node.h"
#include "core/error.h"
#include "ops/ops.h"

namespace mpq::ops {

namespace {

// Below this many elements an OpenMP region costs more than it saves.
constexpr int64_t kParallelMin = 32768;

// Per-channel mean and biased variance of x [N, C, H, W] (two-pass, double accumulation).
void channel_stats(const Tensor& xc, std::vector<double>& mean_out, std::vector<double>& var_out) {
  const int64_t N = xc.size(0), C = xc.size(1), HW = xc.size(2) * xc.size(3);
  const float* px = xc.data<float>();
  mean_out.assign(size_t(C), 0.0);
  var_out.assign(size_t(C), 0.0);
  const double cnt = double(N * HW);
#pragma omp parallel for schedule(static) if (N * C * HW > kParallelMin)
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n) {
      const float* p = px + (n * C + c) * HW;
      float part = 0.0f;
      for (int64_t i = 0; i < HW; ++i) part += p[i];
      s += part;
    }
    const double m = s / cnt;
    double v = 0;
    for (int64_t n = 0; n < N; ++n) {
      const float* p = px + (n * C + c) * HW;
      const float mf = float(m);
      float part = 0.0f;
      for (int64_t i = 0; i < HW; ++i) part += (p[i] - mf) * (p[i] - mf);
      v += part;
    }
    mean_out[size_t(c)] = m;
    var_out[size_t(c)] = v / cnt;
  }
}

// y[n,c,:] = x[n,c,:] * scale[c] + shift[c]; x [N, C, H, W] contiguous
Tensor channel_affine(const Tensor& xc, const std::vector<float>& scale, const std::vector<float>& shift) {
  const int64_t N = xc.size(0), C = xc.size(1), HW = xc.size(2) * xc.size(3);
  Tensor y = Tensor::empty(xc.shape());  // [N, C, H, W]
  const float* px = xc.data<float>();
  float* py = y.data<float>();
#pragma omp parallel for schedule(static) if (N * C * HW > kParallelMin)
  for (int64_t pl = 0; pl < N * C; ++pl) {
    const float a = scale[size_t(pl % C)], b = shift[size_t(pl % C)];
    const float* xp = px + pl * HW;
    float* yp = py + pl * HW;
    for (int64_t i = 0; i < HW; ++i) yp[i] = xp[i] * a + b;
  }
  return y;
}

std::vector<float> values_or(const Tensor& t, int64_t n, float fill) {
  if (!t.defined()) return std::vector<float>(size_t(n), fill);
  return t.contiguous().to_vector();
}

void check_channel_vec(const char* what, const Tensor& t, const Tensor& x) {
  if (!t.defined()) return;
  if (!(t.dim() == 1 && t.size(0) == x.size(1)))
    fail("batch_norm: {} {} does not match input {} ({} channels)", what, shape_str(t.shape()), shape_str(x.shape()),
         x.size(1));
}

// running = (1 - m) * running + m * batch, in place (running is a constant buffer [C]).
void update_running(Tensor& running, const std::vector<double>& batch, float momentum) {
  if (!running.defined()) return;
  Tensor r = running.contiguous();  // [C]
  float* pr = r.data<float>();
  for (size_t c = 0; c < batch.size(); ++c) pr[c] = float((1.0 - momentum) * pr[c] + momentum * batch[c]);
  if (!r.same(running)) running.copy_from(r);
}

// Per-channel affine map y[n,c,:] = x[n,c,:] * scale[c] + shift[c] as a differentiable op (eval-mode batch
// norm). Backward: dx = affine(g, scale, 0) (itself this op, so differentiable in g and scale),
// dscale = sum_{N,H,W}(g * x), dshift = sum_{N,H,W} g: fused when grad mode is off, composed otherwise.
Tensor channel_affine_op(const Tensor& x, const Tensor& scale, const Tensor& shift);

struct ChannelAffineNode : autograd::Node {
  Tensor x, scale;  // x [N, C, H, W], scale [C] (with history)
  bool has_shift = false;
  const char* name() const override { return "batch_norm_eval"; }
  void release() override { x = scale = Tensor(); }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor gx, gscale, gshift;
    if (needs_input_grad(0)) gx = channel_affine_op(g, scale, Tensor());
    const bool want_scale = needs_input_grad(1), want_shift = has_shift && needs_input_grad(2);
    if (!want_scale && !want_shift) return {gx, gscale, gshift};
    if (autograd::grad_mode_enabled()) {
      if (want_scale) gscale = sum(mul(g, x), {0, 2, 3}, false);  // [C]
      if (want_shift) gshift = sum(g, {0, 2, 3}, false);          // [C]
      return {gx, gscale, gshift};
    }
    const Tensor gc = g.contiguous(), xc = x.contiguous();  // [N, C, H, W]
    const int64_t N = xc.size(0), C = xc.size(1), HW = xc.size(2) * xc.size(3);
    const float* px = xc.data<float>();
    const float* pg = gc.data<float>();
    gscale = Tensor::empty({C});  // [C]
    gshift = Tensor::empty({C});  // [C]
    float* ps = gscale.data<float>();
    float* pb = gshift.data<float>();
#pragma omp parallel for schedule(static) if (N * C * HW > kParallelMin)
    for (int64_t c = 0; c < C; ++c) {
      double a = 0, b = 0;
      for (int64_t n = 0; n < N; ++n) {
        const float* xp = px + (n * C + c) * HW;
        const float* gp = pg + (n * C + c) * HW;
        float fa = 0, fb = 0;
        for (int64_t i = 0; i < HW; ++i) {
          fa += gp[i] * xp[i];
          fb += gp[i];
        }
        a += fa;
        b += fb;
      }
      ps[c] = float(a);
      pb[c] = float(b);
    }
    if (!want_scale) gscale = Tensor();
    if (!want_shift) gshift = Tensor();
    return {gx, gscale, gshift};
  }
};

Tensor channel_affine_op(const Tensor& x, const Tensor& scale, const Tensor& shift) {
  const int64_t C = x.size(1);
  const std::vector<float> a = scale.contiguous().to_vector(), b = values_or(shift, C, 0.0f);  // [C]
  Tensor y = channel_affine(x.contiguous(), a, b);                                             // [N, C, H, W]
  if (!autograd::needs_grad({x, scale, shift})) return y;
  auto node = std::make_shared<ChannelAffineNode>();
  node->x = x;
  node->scale = scale;
  node->has_shift = shift.defined();
  return autograd::record(y, node, {x, scale, shift});
}

// Training-mode batch norm as one node. Forward: fused per-channel stats + affine. Backward:
//   xhat = (x - mean) * inv,  gxhat = g * gamma,
//   gx = inv * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat)),  dgamma = sum(g * xhat),  dbeta = sum(g)
// (means/sums over N, H, W). For a first-order backward (grad mode off) this runs as a fused two-pass
// kernel; under create_graph the same formula is built from differentiable ops with mean and inv recomputed
// from x, so derivatives of the gradient (Hessian-vector products) are exact.
struct BatchNormTrainNode : autograd::Node {
  Tensor x, gamma;               // inputs with history: x [N, C, H, W], gamma [C] or undefined
  Tensor xc;                     // detached contiguous x [N, C, H, W]
  std::vector<float> mean, inv;  // [C] batch mean, 1 / sqrt(var + eps)
  float eps = 0;
  bool has_beta = false;
  const char* name() const override { return "batch_norm"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    if (autograd::grad_mode_enabled()) return composed(g);
    return fused(g);
  }
  void release() override { x = gamma = xc = Tensor(); }

  std::vector<Tensor> composed(const Tensor& g) const {
    const int64_t C = x.size(1);
    const Shape bshape{1, C, 1, 1};
    const std::vector<int64_t> red{0, 2, 3};
    const Tensor mu = ops::mean(x, red, true);  // [1, C, 1, 1]
    const Tensor xm = sub(x, mu);               // [N, C, H, W]
    const Tensor rstd = div(Tensor::full(bshape, 1.0f), sqrt(add_scalar(ops::mean(square(xm), red, true), eps)));
    const Tensor xhat = mul(xm, rstd);  // [N, C, H, W]
    Tensor gx, ggamma, gbeta;
    if (needs_input_grad(0)) {
      const Tensor gxhat = gamma.defined() ? mul(g, reshape(gamma, bshape)) : g;  // [N, C, H, W]
      const Tensor t = sub(sub(gxhat, ops::mean(gxhat, red, true)), mul(xhat, ops::mean(mul(gxhat, xhat), red, true)));
      gx = mul(t, rstd);
    }
    if (gamma.defined() && needs_input_grad(1)) ggamma = sum(mul(g, xhat), red, false);  // [C]
    if (has_beta && needs_input_grad(2)) gbeta = sum(g, red, false);                     // [C]
    return {gx, ggamma, gbeta};
  }

  std::vector<Tensor> fused(const Tensor& g_in) const {
    const Tensor g = g_in.contiguous();  // [N, C, H, W]
    const int64_t N = xc.size(0), C = xc.size(1), HW = xc.size(2) * xc.size(3);
    const float M = float(N * HW);
    const float* px = xc.data<float>();
    const float* pg = g.data<float>();
    std::vector<float> gam = values_or(gamma, C, 1.0f);
    std::vector<double> sg(static_cast<size_t>(C)), sgx(static_cast<size_t>(C));  // [C] sum(g), sum(g * xhat)
#pragma omp parallel for schedule(static) if (N * C * HW > kParallelMin)
    for (int64_t c = 0; c < C; ++c) {
      const float m = mean[size_t(c)], iv = inv[size_t(c)];
      double a = 0, b = 0;
      for (int64_t n = 0; n < N; ++n) {
        const float* xp = px + (n * C + c) * HW;
        const float* gp = pg + (n * C + c) * HW;
        float fa = 0, fb = 0;
        for (int64_t i = 0; i < HW; ++i) {
          fa += gp[i];
          fb += gp[i] * (xp[i] - m) * iv;
        }
        a += fa;
        b += fb;
      }
      sg[size_t(c)] = a;
      sgx[size_t(c)] = b;
    }
    Tensor gx, ggamma, gbeta;
    if (needs_input_grad(0)) {
      gx = Tensor::empty(xc.shape());  // [N, C, H, W]
      float* po = gx.data<float>();
#pragma omp parallel for schedule(static) if (N * C * HW > kParallelMin)
      for (int64_t pl = 0; pl < N * C; ++pl) {
        const size_t c = size_t(pl % C);
        const float m = mean[c], iv = inv[c], k = gam[c] * iv;
        const float mg = float(sg[c] / M), mgx = float(sgx[c] / M);
        const float* xp = px + pl * HW;
        const float* gp = pg + pl * HW;
        float* op = po + pl * HW;
        for (int64_t i = 0; i < HW; ++i) op[i] = k * (gp[i] - mg - (xp[i] - m) * iv * mgx);
      }
    }
    if (gamma.defined() && needs_input_grad(1)) {
      ggamma = Tensor::empty({C});  // [C]
      for (int64_t c = 0; c < C; ++c) ggamma.data<float>()[c] = float(sgx[size_t(c)]);
    }
    if (has_beta && needs_input_grad(2)) {
      gbeta = Tensor::empty({C});  // [C]
      for (int64_t c = 0; c < C; ++c) gbeta.data<float>()[c] = float(sg[size_t(c)]);
    }
    return {gx, ggamma, gbeta};
  }
};

// Layer norm over the last dim as one node; same scheme as BatchNormTrainNode with statistics per row:
//   gx = inv * (gxhat - mean_D(gxhat) - xhat * mean_D(gxhat * xhat)),  dgamma = sum_rows(g * xhat),
//   dbeta = sum_rows(g).
struct LayerNormNode : autograd::Node {
  Tensor x, gamma;               // inputs with history: x [..., D], gamma [D] or undefined
  Tensor xc;                     // detached contiguous x [R, D]
  std::vector<float> mean, inv;  // [R]
  float eps = 0;
  bool has_beta = false;
  const char* name() const override { return "layer_norm"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    if (autograd::grad_mode_enabled()) return composed(g);
    return fused(g);
  }
  void release() override { x = gamma = xc = Tensor(); }

  std::vector<Tensor> composed(const Tensor& g) const {
    const int64_t last = x.dim() - 1, D = x.size(-1);
    const Tensor xm = sub(x, ops::mean(x, {last}, true));                          // [..., D]
    const Tensor sd = sqrt(add_scalar(ops::mean(square(xm), {last}, true), eps));  // [..., 1]
    const Tensor xhat = div(xm, sd);                                               // [..., D]
    Tensor gx, ggamma, gbeta;
    if (needs_input_grad(0)) {
      const Tensor gxhat = gamma.defined() ? mul(g, gamma) : g;  // [..., D]
      const Tensor t =
          sub(sub(gxhat, ops::mean(gxhat, {last}, true)), mul(xhat, ops::mean(mul(gxhat, xhat), {last}, true)));
      gx = div(t, sd);
    }
    if (gamma.defined() && needs_input_grad(1)) ggamma = sum_to(mul(g, xhat), {D});  // [D]
    if (has_beta && needs_input_grad(2)) gbeta = sum_to(g, {D});                     // [D]
    return {gx, ggamma, gbeta};
  }

  std::vector<Tensor> fused(const Tensor& g_in) const {
    const Tensor g = g_in.contiguous();  // [R, D]
    const int64_t D = xc.size(-1), R = int64_t(mean.size());
    const float* px = xc.data<float>();
    const float* pg = g.data<float>();
    const std::vector<float> gam = values_or(gamma, D, 1.0f);  // [D]
    Tensor gx, ggamma, gbeta;
    if (needs_input_grad(0)) {
      gx = Tensor::empty(xc.shape());  // [R, D]
      float* po = gx.data<float>();
#pragma omp parallel for schedule(static) if (R * D > kParallelMin)
      for (int64_t r = 0; r < R; ++r) {
        const float* xr = px + r * D;
        const float* gr = pg + r * D;
        float* orow = po + r * D;
        const float m = mean[size_t(r)], iv = inv[size_t(r)];
        double a = 0, b = 0;  // sum(gxhat), sum(gxhat * xhat)
        for (int64_t i = 0; i < D; ++i) {
          const float gh = gr[i] * gam[size_t(i)];
          a += gh;
          b += gh * (xr[i] - m) * iv;
        }
        const float ma = float(a / double(D)), mb = float(b / double(D));
        for (int64_t i = 0; i < D; ++i) orow[i] = iv * (gr[i] * gam[size_t(i)] - ma - (xr[i] - m) * iv * mb);
      }
    }
    const bool want_gamma = gamma.defined() && needs_input_grad(1), want_beta = has_beta && needs_input_grad(2);
    if (want_gamma || want_beta) {
      ggamma = Tensor::zeros({D});  // [D]
      gbeta = Tensor::zeros({D});   // [D]
      float* pgg = ggamma.data<float>();
      float* pgb = gbeta.data<float>();
      constexpr int64_t kCols = 64;
#pragma omp parallel for schedule(static) if (R * D > kParallelMin)
      for (int64_t c0 = 0; c0 < D; c0 += kCols) {
        const int64_t c1 = std::min(D, c0 + kCols);
        for (int64_t r = 0; r < R; ++r) {
          const float m = mean[size_t(r)], iv = inv[size_t(r)];
          const float* xr = px + r * D;
          const float* gr = pg + r * D;
          for (int64_t i = c0; i < c1; ++i) {
            pgg[i] += gr[i] * (xr[i] - m) * iv;
            pgb[i] += gr[i];
          }
        }
      }
      if (!want_gamma) ggamma = Tensor();
      if (!want_beta) gbeta = Tensor();
    }
    return {gx, ggamma, gbeta};
  }
};

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                  bool training, float momentum, float eps) {
  if (!(x.dim() == 4)) fail("batch_norm: input must be 4-D [N, C, H, W], got {}", shape_str(x.shape()));
  if (!(x.dtype() == DType::f32)) fail("batch_norm: expects f32 input {}", shape_str(x.shape()));
  check_channel_vec("gamma", gamma, x);
  check_channel_vec("beta", beta, x);
  check_channel_vec("running_mean", running_mean, x);
  check_channel_vec("running_var", running_var, x);
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const bool record = autograd::needs_grad({x, gamma, beta});

  if (!training) {
    if (!(running_mean.defined() && running_var.defined()))
      fail("batch_norm: eval mode on input {} needs running stats", shape_str(x.shape()));
    const std::vector<float> rm = running_mean.contiguous().to_vector(), rv = running_var.contiguous().to_vector();
    std::vector<float> inv(static_cast<size_t>(C));  // [C] 1 / sqrt(var + eps)
    for (int64_t c = 0; c < C; ++c) inv[size_t(c)] = 1.0f / std::sqrt(rv[size_t(c)] + eps);
    if (!record) {
      const std::vector<float> g = values_or(gamma, C, 1.0f), b = values_or(beta, C, 0.0f);
      std::vector<float> scale(static_cast<size_t>(C)), shift(static_cast<size_t>(C));
      for (size_t c = 0; c < size_t(C); ++c) {
        scale[c] = g[c] * inv[c];
        shift[c] = b[c] - rm[c] * scale[c];
      }
      return channel_affine(x.contiguous(), scale, shift);
    }
    // y = x * scale + shift, scale = gamma * inv, shift = beta - mean * scale (differentiable in x, gamma, beta)
    Tensor scale = Tensor::from_vector({C}, inv);  // [C]
    if (gamma.defined()) scale = mul(gamma, scale);
    Tensor shift = neg(mul(Tensor::from_vector({C}, rm), scale));  // [C]
    if (beta.defined()) shift = add(beta, shift);
    return channel_affine_op(x, scale, shift);
  }

  const int64_t cnt = N * HW;
  if (!(cnt > 0)) fail("batch_norm: training mode on empty input {}", shape_str(x.shape()));
  const Tensor xc = x.contiguous();  // [N, C, H, W]
  std::vector<double> bm, bv;        // [C] batch mean, biased variance
  {
    autograd::NoGradGuard ng;
    channel_stats(xc, bm, bv);
    std::vector<double> unbiased(bv);
    for (auto& v : unbiased) v = cnt > 1 ? v * double(cnt) / double(cnt - 1) : v;
    update_running(running_mean, bm, momentum);
    update_running(running_var, unbiased, momentum);
  }
  const std::vector<float> g = values_or(gamma, C, 1.0f), b = values_or(beta, C, 0.0f);
  std::vector<float> scale(static_cast<size_t>(C)), shift(static_cast<size_t>(C)), mean_f(static_cast<size_t>(C)),
      inv_f(static_cast<size_t>(C));  // [C]
  for (size_t c = 0; c < size_t(C); ++c) {
    inv_f[c] = float(1.0 / std::sqrt(bv[c] + double(eps)));
    mean_f[c] = float(bm[c]);
    scale[c] = float(g[c] / std::sqrt(bv[c] + double(eps)));
    shift[c] = float(b[c] - bm[c] * scale[c]);
  }
  Tensor y = channel_affine(xc, scale, shift);  // [N, C, H, W]
  if (!record) return y;
  auto node = std::make_shared<BatchNormTrainNode>();
  node->x = x;
  node->gamma = gamma;
  node->xc = xc.detach();
  node->mean = std::move(mean_f);
  node->inv = std::move(inv_f);
  node->eps = eps;
  node->has_beta = beta.defined();
  return autograd::record(y, node, {x, gamma, beta});
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  if (!(x.dim() >= 1)) fail("layer_norm: input must have at least one dimension, got {}", shape_str(x.shape()));
  if (!(x.dtype() == DType::f32)) fail("layer_norm: expects f32 input {}", shape_str(x.shape()));
  const int64_t D = x.size(-1);
  for (const Tensor* t : {&gamma, &beta})
    if (t->defined())
      if (!(t->dim() == 1 && t->size(0) == D))
        fail("layer_norm: {} {} does not match input {} (last dim {})", t == &gamma ? "gamma" : "beta",
             shape_str(t->shape()), shape_str(x.shape()), D);
  const Tensor xc = x.contiguous();                                                      // [R, D]
  const std::vector<float> g = values_or(gamma, D, 1.0f), b = values_or(beta, D, 0.0f);  // [D]
  const int64_t rows = D > 0 ? x.numel() / D : 0;
  std::vector<float> mean_r(static_cast<size_t>(rows)), inv_r(static_cast<size_t>(rows));  // [R]
  Tensor y = Tensor::empty(x.shape());                                                     // [R, D]
  const float* px = xc.data<float>();
  float* py = y.data<float>();
#pragma omp parallel for schedule(static) if (rows * D > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = px + r * D;
    float* yr = py + r * D;
    double s = 0;
    for (int64_t i = 0; i < D; ++i) s += xr[i];
    const float m = float(s / double(D));
    double v = 0;
    for (int64_t i = 0; i < D; ++i) v += double(xr[i] - m) * double(xr[i] - m);
    const float inv = float(1.0 / std::sqrt(v / double(D) + double(eps)));
    for (int64_t i = 0; i < D; ++i) yr[i] = (xr[i] - m) * inv * g[size_t(i)] + b[size_t(i)];
    mean_r[size_t(r)] = m;
    inv_r[size_t(r)] = inv;
  }
  if (!autograd::needs_grad({x, gamma, beta})) return y;
  auto node = std::make_shared<LayerNormNode>();
  node->x = x;
  node->gamma = gamma;
  node->xc = xc.detach();
  node->mean = std::move(mean_r);
  node->inv = std::move(inv_r);
  node->eps = eps;
  node->has_beta = beta.defined();
  return autograd::record(y, node, {x, gamma, beta});
}

}  // namespace mpq::ops
