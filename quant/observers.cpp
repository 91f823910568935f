#include "quant/observers.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/rng.h"

namespace mpq::quant {

ActQuantParams act_params_from_range(float lo, float hi) {
  check(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "activation range [{}, {}] is not a finite interval", lo,
        hi);
  ActQuantParams p;
  p.lo = std::min(lo, 0.0f);
  p.hi = std::max(hi, 0.0f);
  if (p.hi - p.lo <= 0) return p;  // all zero: s = 1, zp = 0
  p.scale = (p.hi - p.lo) / 255.0f;
  p.zero_point = int32_t(std::clamp(std::nearbyint(-p.lo / p.scale), 0.0f, 255.0f));
  return p;
}

float fake_quant_act_value(float x, const ActQuantParams& p) {
  const float q = std::clamp(std::nearbyint(x / p.scale) + float(p.zero_point), 0.0f, 255.0f);
  return (q - float(p.zero_point)) * p.scale;
}

Tensor fake_quant_act(const Tensor& x, const ActQuantParams& p) {
  check(x.dtype() == DType::f32, "fake_quant_act: f32 activation expected, got {}", dtype_name(x.dtype()));
  check(p.scale > 0 && p.zero_point >= 0 && p.zero_point <= 255, "fake_quant_act: bad scale {} / zero point {}",
        p.scale, p.zero_point);
  const Tensor c = x.contiguous();
  Tensor out = Tensor::zeros(x.shape());  // same shape as x, f32
  const float* src = c.data<float>();
  float* dst = out.data<float>();
  const int64_t n = x.numel();
  const float s = p.scale, zp = float(p.zero_point);
#pragma omp parallel for if (n > (1 << 16)) schedule(static)
  for (int64_t i = 0; i < n; ++i) dst[i] = (std::clamp(std::nearbyint(src[i] / s) + zp, 0.0f, 255.0f) - zp) * s;
  return out;
}

namespace {

double plain_error(const std::vector<float>& xs, const ActQuantParams& p) {
  double acc = 0;
  for (float x : xs) {
    const double e = double(x) - fake_quant_act_value(x, p);
    acc += e * e;
  }
  return acc;
}

// Linear-interpolated quantile q in [0, 1] of a sorted vector.
float quantile(const std::vector<float>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double pos = q * double(sorted.size() - 1);
  const size_t i = size_t(std::floor(pos));
  const size_t j = std::min(i + 1, sorted.size() - 1);
  return float(sorted[i] + (pos - double(i)) * (sorted[j] - sorted[i]));
}

}  // namespace

ActQuantParams observe(const ActivationStats& st, ObserverKind kind, const ObserverOptions& opt) {
  check(st.seen > 0, "observer {}: no activation values were recorded", observer_name(kind));
  switch (kind) {
    case ObserverKind::minmax:
      return act_params_from_range(float(st.min), float(st.max));
    case ObserverKind::percentile: {
      check(opt.percentile > 50 && opt.percentile <= 100, "percentile observer: percentile {} not in (50, 100]",
            opt.percentile);
      std::vector<float> s = st.sample;  // [S] sorted copy
      std::sort(s.begin(), s.end());
      return act_params_from_range(quantile(s, 1 - opt.percentile / 100), quantile(s, opt.percentile / 100));
    }
    case ObserverKind::mse: {
      check(opt.grid > 0, "mse observer: grid {} must be positive", opt.grid);
      ActQuantParams best = act_params_from_range(float(st.min), float(st.max));
      double best_err = plain_error(st.sample, best);
      for (int k = opt.grid - 1; k >= 1; --k) {  // a = k / grid, from 1 downwards; ties keep the wider range
        const double a = double(k) / opt.grid;
        const ActQuantParams p = act_params_from_range(float(a * st.min), float(a * st.max));
        const double e = plain_error(st.sample, p);
        if (e < best_err) best_err = e, best = p;
      }
      return best;
    }
  }
  fail("observer kind {} unknown", int(kind));
}

double weighted_quant_error(const ActivationStats& st, const ActQuantParams& p,
                            const std::vector<double>& channel_weight) {
  double acc = 0;
  for (size_t i = 0; i < st.sample.size(); ++i) {
    const double e = double(st.sample[i]) - fake_quant_act_value(st.sample[i], p);
    const int32_t c = st.channel[i];
    const double w = channel_weight.empty() || c < 0 ? 1.0 : channel_weight[size_t(c)];
    acc += w * e * e;
  }
  return acc;
}

std::vector<double> input_channel_weights(const Tensor& w_in, int64_t channels) {
  const Tensor w = w_in.contiguous();
  check(w.dtype() == DType::f32 && (w.dim() == 2 || w.dim() == 4), "input_channel_weights: weight {} not 2-D/4-D f32",
        shape_str(w.shape()));
  const int64_t O = w.size(0), cpg = w.size(1);  // cpg: input channels per group
  const int64_t spatial = w.numel() / (O * cpg);
  check(cpg > 0 && channels % cpg == 0, "input_channel_weights: {} input channels vs weight {}", channels,
        shape_str(w.shape()));
  const int64_t groups = channels / cpg, opg = O / groups;  // opg: outputs per group
  check(O % groups == 0, "input_channel_weights: {} outputs not divisible by {} groups", O, groups);
  std::vector<double> out(size_t(channels), 0.0);  // [C]
  const float* p = w.data<float>();                // [O, cpg, spatial]
  for (int64_t o = 0; o < O; ++o) {
    const int64_t g = o / opg;
    for (int64_t ci = 0; ci < cpg; ++ci) {
      double s = 0;
      for (int64_t k = 0; k < spatial; ++k)
        s += double(p[(o * cpg + ci) * spatial + k]) * p[(o * cpg + ci) * spatial + k];
      out[size_t(g * cpg + ci)] += s;
    }
  }
  return out;
}

Tensor CalibrationHook::on_weight(const std::string& layer, const Tensor& w) {
  if (!weights_.count(layer)) weights_[layer] = w.detach().clone();
  return w;
}

Tensor CalibrationHook::on_input(const std::string& layer, int operand, const Tensor& x_in) {
  const Tensor x = x_in.contiguous();
  check(x.dtype() == DType::f32 && x.dim() >= 1, "calibration: layer '{}' input {} is not f32", layer,
        shape_str(x.shape()));
  ActivationStats& st = stats_[layer][operand];
  const int64_t n = x.numel();
  const bool nchw = x.dim() == 4;
  const int64_t C = nchw ? x.size(1) : x.size(-1), inner = nchw ? x.size(2) * x.size(3) : 1;
  check(st.channels == 0 || st.channels == C, "calibration: layer '{}' input has {} channels, earlier {}", layer, C,
        st.channels);
  st.channels = C;
  const float* p = x.data<float>();  // [numel]
  double mn = std::numeric_limits<double>::infinity(), mx = -mn;
  for (int64_t i = 0; i < n; ++i) mn = std::min(mn, double(p[i])), mx = std::max(mx, double(p[i]));
  if (st.seen == 0) st.min = mn, st.max = mx;
  st.min = std::min(st.min, mn), st.max = std::max(st.max, mx);
  st.seen += n;
  const int64_t room = opt_.sample_cap - int64_t(st.sample.size());
  const int64_t take = std::min({room, opt_.sample_per_batch, n});
  SplitMix64 rng{0x5EEDull + (++calls_)};
  for (int64_t k = 0; k < take; ++k) {
    const int64_t i = take == n ? k : int64_t(rng.next() % uint64_t(n));  // all, or uniform with replacement
    st.sample.push_back(p[i]);
    st.channel.push_back(int32_t((i / inner) % C));
  }
  return x_in;
}

Calibration CalibrationHook::finish() const {
  Calibration out;
  const ObserverKind kinds[] = {ObserverKind::minmax, ObserverKind::percentile, ObserverKind::mse};
  for (const auto& [layer, ops] : stats_)
    for (const auto& [operand, st] : ops) {
      std::vector<double> cw;  // [C] or empty
      auto wit = weights_.find(layer);
      if (operand == 0 && wit != weights_.end()) cw = input_channel_weights(wit->second, st.channels);
      CalibratedInput ci;
      double best = std::numeric_limits<double>::infinity();
      for (ObserverKind k : kinds) {
        const ActQuantParams p = observe(st, k, opt_);
        const double e = weighted_quant_error(st, p, cw);
        ci.error[observer_name(k)] = e;
        if (e < best) best = e, ci.params = p, ci.chosen = k;  // ties keep the earlier (simpler) observer
      }
      out[layer][operand] = ci;
    }
  return out;
}

}  // namespace mpq::quant
