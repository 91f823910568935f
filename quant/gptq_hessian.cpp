#include "quant/gptq_hessian.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "models/cnn_common.h"
#include "ops/kernels_f32.h"

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
  LayerStats& st = stats_[layer];
  if (it->second.kind == models::LayerKind::linear)
    accumulate_linear(st, x);
  else
    accumulate_conv(st, it->second.conv, x);
  seen_input_.insert(layer);
  return x;
}

namespace {
void init_stats(LayerStats& st, int64_t K, int64_t blocks, const std::string& what) {
  if (st.K == 0) {
    st.K = K, st.blocks = blocks;
    st.xtx.assign(size_t(blocks * K * K), 0.0);
    st.xsum.assign(size_t(blocks * K), 0.0);
  }
  check(st.K == K && st.blocks == blocks, "stats hook: {} changed shape ({} blocks of {} columns, then {} of {})", what,
        st.blocks, st.K, blocks, K);
}
}  // namespace

void StatsHook::add_rows(LayerStats& st, int64_t block, const float* rows, int64_t n) {
  const int64_t K = st.K;
  double* xtx = st.xtx.data() + block * K * K;  // [K, K]
  double* xs = st.xsum.data() + block * K;      // [K]
  for (int64_t r = 0; r < n; ++r)
    for (int64_t k = 0; k < K; ++k) xs[k] += rows[r * K + k];
  if (K <= kDirectK) {
    for (int64_t r = 0; r < n; ++r) {
      const float* x = rows + r * K;
      for (int64_t i = 0; i < K; ++i)
        for (int64_t j = 0; j < K; ++j) xtx[i * K + j] += double(x[i]) * double(x[j]);
    }
    return;
  }
  std::vector<float> t(size_t(K * K));  // [K, K] f32: this chunk's X^T X
  kernels::gemm_f32({K, K, n, rows, K, true, rows, K, false, t.data(), K, 0.0f});
  for (int64_t i = 0; i < K * K; ++i) xtx[i] += double(t[size_t(i)]);
}

void StatsHook::accumulate_linear(LayerStats& st, const Tensor& x_in) {
  const Tensor x = x_in.contiguous();
  const int64_t K = x.size(-1), n = x.numel() / K;
  init_stats(st, K, 1, "linear input");
  const float* p = x.data<float>();  // [n, K]
  const bool masked = !mask_.empty() && int64_t(mask_.size()) == n;
  std::vector<float> buf(size_t(opt_.chunk_rows * K));  // [chunk, K] f32: the kept rows
  int64_t fill = 0;
  for (int64_t r = 0; r < n; ++r) {
    if (masked && mask_[size_t(r)] == 0) continue;
    std::copy(p + r * K, p + (r + 1) * K, buf.data() + fill * K);
    ++st.rows;
    if (++fill == opt_.chunk_rows) add_rows(st, 0, buf.data(), fill), fill = 0;
  }
  if (fill) add_rows(st, 0, buf.data(), fill);
}

void StatsHook::accumulate_conv(LayerStats& st, const models::ConvGeometry& g, const Tensor& x_in) {
  check(x_in.dim() == 4 && x_in.size(1) == g.in_channels, "stats hook: conv input {} does not have {} channels",
        shape_str(x_in.shape()), g.in_channels);
  const Tensor x = x_in.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const ops::Conv2dParams p = models::conv_params(g, H, W);
  const int64_t k = g.kernel, OH = (H + p.pad_top + p.pad_bottom - k) / p.stride_h + 1;
  const int64_t OW = (W + p.pad_left + p.pad_right - k) / p.stride_w + 1;
  const int64_t Cg = C / g.groups, K = Cg * k * k, P = OH * OW;
  init_stats(st, K, g.groups, "conv input");
  const int64_t keep = opt_.max_positions > 0 ? std::min(P, opt_.max_positions) : P;
  const float* px = x.data<float>();  // [N, C, H, W]
  for (int64_t n = 0; n < N; ++n, ++samples_) {
    std::vector<int64_t> pos(static_cast<size_t>(keep));  // kept output positions (oh * OW + ow)
    const double phase = std::fmod(double(samples_) * 0.6180339887498949, 1.0);
    for (int64_t i = 0; i < keep; ++i)
      pos[size_t(i)] = keep == P ? i : std::min(P - 1, int64_t((double(i) + phase) * double(P) / double(keep)));
    st.rows += keep;
    const int64_t chunk = std::max<int64_t>(1, std::min(opt_.chunk_rows, keep));
#pragma omp parallel for if (g.groups > 1) schedule(dynamic)
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      std::vector<float> rows(size_t(chunk * K));  // [chunk, K] f32 im2col rows of group gi
      for (int64_t c0 = 0; c0 < keep; c0 += chunk) {
        const int64_t nr = std::min(chunk, keep - c0);
        for (int64_t r = 0; r < nr; ++r) {
          const int64_t oh = pos[size_t(c0 + r)] / OW, ow = pos[size_t(c0 + r)] % OW;
          float* row = rows.data() + r * K;
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
        add_rows(st, gi, rows.data(), nr);
      }
    }
  }
}

}  // namespace mpq::quant
