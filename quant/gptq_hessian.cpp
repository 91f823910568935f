#include "quant/gptq_hessian.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "models/cnn_common.h"
#include "ops/kernels/f32.h"

namespace mpq::quant {

StatsHook::StatsHook(const std::vector<models::QuantLayer>& layers, std::shared_ptr<models::LayerHook> inner,
                     CaptureOptions opt)
    : inner_(std::move(inner)), opt_(opt) {
  check(opt_.chunk_rows > 0 && opt_.max_positions >= 0, "stats hook: chunk_rows {} / max_positions {} invalid",
        opt_.chunk_rows, opt_.max_positions);
  for (const models::QuantLayer& l : layers) {
    check(l.kind != models::LayerKind::attention_matmul, "stats hook: layer '{}' has no weight to round", l.name);
    check(l.kind == models::LayerKind::linear || (l.conv.in_channels > 0 && l.conv.groups > 0),
          "stats hook: conv layer '{}' has no geometry (QuantLayer::conv)", l.name);
    layers_[l.name] = l;
  }
}

void StatsHook::maybe_stop() {
  if (opt_.stop_early && seen_input_.size() == layers_.size() && seen_weight_.size() == layers_.size())
    throw StopForward{};
}

Tensor StatsHook::on_weight(const std::string& layer, const Tensor& w) {
  maybe_stop();
  if (layers_.count(layer)) {
    if (!weights_.count(layer)) weights_[layer] = w.contiguous().clone();
    seen_weight_.insert(layer);
  }
  return inner_ ? inner_->on_weight(layer, w) : w;
}

Tensor StatsHook::on_input(const std::string& layer, int operand, const Tensor& x_in) {
  maybe_stop();
  const Tensor x = inner_ ? inner_->on_input(layer, operand, x_in) : x_in;
  auto it = layers_.find(layer);
  if (it == layers_.end() || operand != 0) return x;
  check(x.dtype() == DType::f32, "stats hook: layer '{}' input is {}, f32 expected", layer, dtype_name(x.dtype()));
  const Tensor* ref = nullptr;
  if (ref_) {
    auto r = ref_->find(layer);
    check(r != ref_->end() && r->second.shape() == x.shape(),
          "stats hook: layer '{}' has no reference input of shape {} for this batch", layer, shape_str(x.shape()));
    ref = &r->second;
  }
  LayerStats& st = stats_[layer];
  if (it->second.kind == models::LayerKind::linear)
    accumulate_linear(st, x, ref);
  else
    accumulate_conv(st, it->second.conv, x, ref);
  seen_input_.insert(layer);
  return x;
}

namespace {
void init_stats(LayerStats& st, int64_t K, int64_t blocks, bool cross, const std::string& what) {
  if (st.K == 0) {
    st.K = K, st.blocks = blocks;
    st.xtx.assign(size_t(blocks * K * K), 0.0);
    st.xsum.assign(size_t(blocks * K), 0.0);
    if (cross) {
      st.xcross.assign(size_t(blocks * K * K), 0.0);
      st.xsum_ref.assign(size_t(blocks * K), 0.0);
    }
  }
  check(st.K == K && st.blocks == blocks && st.xcross.empty() != cross,
        "stats hook: {} changed shape ({} blocks of {} columns, then {} of {}) or reference", what, st.blocks, st.K,
        blocks, K);
}

// xy [K, K] f64 += a^T b over n rows (a, b [n, K] f32): f64 loops for K <= kDirectK, else one f32 GEMM.
void add_product(double* xy, const float* a, const float* b, int64_t n, int64_t K) {
  if (K <= kDirectK) {
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < K; ++i)
        for (int64_t j = 0; j < K; ++j) xy[i * K + j] += double(a[r * K + i]) * double(b[r * K + j]);
    return;
  }
  std::vector<float> t(static_cast<size_t>(K * K));  // [K, K] f32: this chunk's a^T b
  kernels::gemm_f32({K, K, n, a, K, true, b, K, false, t.data(), K, 0.0f});
  for (int64_t i = 0; i < K * K; ++i) xy[i] += double(t[size_t(i)]);
}

void add_sum(double* s, const float* rows, int64_t n, int64_t K) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t k = 0; k < K; ++k) s[k] += rows[r * K + k];
}

// im2col rows of conv group gi at flat positions at[0, nr) (sample n = at / P, output position at % P) of x
// [N, C, H, W]: row r [K], k = (c * k + kh) * k + kw.
void gather_rows(const float* px, int64_t C, int64_t H, int64_t W, int64_t gi, int64_t Cg, int64_t k,
                 const ops::Conv2dParams& p, int64_t OW, int64_t P, const int64_t* at, int64_t nr, float* rows) {
  const int64_t K = Cg * k * k;
  for (int64_t r = 0; r < nr; ++r) {
    const int64_t n = at[r] / P, oh = (at[r] % P) / OW, ow = (at[r] % P) % OW;
    float* row = rows + r * K;
    for (int64_t c = 0; c < Cg; ++c) {
      const float* plane = px + ((n * C) + gi * Cg + c) * H * W;  // [H, W]
      for (int64_t kh = 0; kh < k; ++kh) {
        const int64_t ih = oh * p.stride_h - p.pad_top + kh;
        for (int64_t kw = 0; kw < k; ++kw) {
          const int64_t iw = ow * p.stride_w - p.pad_left + kw;
          row[(c * k + kh) * k + kw] = ih >= 0 && ih < H && iw >= 0 && iw < W ? plane[ih * W + iw] : 0.0f;
        }
      }
    }
  }
}
}  // namespace

void StatsHook::add_rows(LayerStats& st, int64_t block, const float* rows, const float* ref_rows, int64_t n) {
  const int64_t K = st.K;
  add_sum(st.xsum.data() + block * K, rows, n, K);
  add_product(st.xtx.data() + block * K * K, rows, rows, n, K);
  if (!ref_rows) return;
  add_sum(st.xsum_ref.data() + block * K, ref_rows, n, K);
  add_product(st.xcross.data() + block * K * K, ref_rows, rows, n, K);
}

void StatsHook::accumulate_linear(LayerStats& st, const Tensor& x_in, const Tensor* ref_in) {
  const Tensor x = x_in.contiguous();
  const Tensor ref = ref_in ? ref_in->contiguous() : Tensor();
  const int64_t K = x.size(-1), n = x.numel() / K;
  init_stats(st, K, 1, ref_in != nullptr, "linear input");
  const float* p = x.data<float>();                        // [n, K]
  const float* pr = ref_in ? ref.data<float>() : nullptr;  // [n, K]
  const bool masked = !mask_.empty() && int64_t(mask_.size()) == n;
  std::vector<float> buf(size_t(opt_.chunk_rows * K)), rbuf(pr ? buf.size() : 0);  // [chunk, K] f32: kept rows
  int64_t fill = 0;
  for (int64_t r = 0; r < n; ++r) {
    if (masked && mask_[size_t(r)] == 0) continue;
    std::copy(p + r * K, p + (r + 1) * K, buf.data() + fill * K);
    if (pr) std::copy(pr + r * K, pr + (r + 1) * K, rbuf.data() + fill * K);
    ++st.rows;
    if (++fill == opt_.chunk_rows) add_rows(st, 0, buf.data(), pr ? rbuf.data() : nullptr, fill), fill = 0;
  }
  if (fill) add_rows(st, 0, buf.data(), pr ? rbuf.data() : nullptr, fill);
}

void StatsHook::accumulate_conv(LayerStats& st, const models::ConvGeometry& g, const Tensor& x_in,
                                const Tensor* ref_in) {
  check(x_in.dim() == 4 && x_in.size(1) == g.in_channels, "stats hook: conv input {} does not have {} channels",
        shape_str(x_in.shape()), g.in_channels);
  const Tensor x = x_in.contiguous();
  const Tensor ref = ref_in ? ref_in->contiguous() : Tensor();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const ops::Conv2dParams p = models::conv_params(g, H, W);
  const int64_t k = g.kernel, OH = (H + p.pad_top + p.pad_bottom - k) / p.stride_h + 1;
  const int64_t OW = (W + p.pad_left + p.pad_right - k) / p.stride_w + 1;
  const int64_t Cg = C / g.groups, K = Cg * k * k, P = OH * OW;
  init_stats(st, K, g.groups, ref_in != nullptr, "conv input");
  const int64_t keep = opt_.max_positions > 0 ? std::min(P, opt_.max_positions) : P;
  const float* px = x.data<float>();                       // [N, C, H, W]
  const float* pr = ref_in ? ref.data<float>() : nullptr;  // [N, C, H, W]
  // The kept positions of every sample of the batch, as flat indices n * P + position; rows of several samples
  // share one chunk (a late layer keeps few positions per sample).
  std::vector<int64_t> at;  // [N * keep]
  at.reserve(size_t(N * keep));
  for (int64_t n = 0; n < N; ++n, ++samples_) {
    const double phase = std::fmod(double(samples_) * 0.6180339887498949, 1.0);
    for (int64_t i = 0; i < keep; ++i)
      at.push_back(n * P + (keep == P ? i : std::min(P - 1, int64_t((double(i) + phase) * double(P) / double(keep)))));
  }
  st.rows += N * keep;
  const int64_t total = N * keep, chunk = std::max<int64_t>(1, std::min(opt_.chunk_rows, total));
#pragma omp parallel for if (g.groups > 1) schedule(dynamic)
  for (int64_t gi = 0; gi < g.groups; ++gi) {
    std::vector<float> rows(size_t(chunk * K)), rrows(pr ? rows.size() : 0);  // [chunk, K] f32 im2col rows
    for (int64_t c0 = 0; c0 < total; c0 += chunk) {
      const int64_t nr = std::min(chunk, total - c0);
      gather_rows(px, C, H, W, gi, Cg, k, p, OW, P, at.data() + c0, nr, rows.data());
      if (pr) gather_rows(pr, C, H, W, gi, Cg, k, p, OW, P, at.data() + c0, nr, rrows.data());
      add_rows(st, gi, rows.data(), pr ? rrows.data() : nullptr, nr);
    }
  }
}

Tensor InputRecorder::on_weight(const std::string& layer, const Tensor& w) {
  if (stop_early_ && inputs_.size() == layers_.size()) throw StopForward{};
  return inner_ ? inner_->on_weight(layer, w) : w;
}

Tensor InputRecorder::on_input(const std::string& layer, int operand, const Tensor& x_in) {
  if (stop_early_ && inputs_.size() == layers_.size()) throw StopForward{};
  const Tensor x = inner_ ? inner_->on_input(layer, operand, x_in) : x_in;
  if (operand == 0 && layers_.count(layer)) inputs_[layer] = x.contiguous().clone();
  return x;
}

}  // namespace mpq::quant
