#include "models/cnn_common.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "core/autograd/node.h"
#include "core/error.h"
#include "ops/fold_bn.h"

namespace mpq::models {

ConvUnit::ConvUnit(ConvSpec s) : spec(std::move(s)) {
  check(spec.in % spec.groups == 0 && spec.out % spec.groups == 0,
        "conv '{}': channels {}->{} not divisible by groups {}", spec.conv, spec.in, spec.out, spec.groups);
  weight = Tensor::zeros({spec.out, spec.in / spec.groups, spec.kernel, spec.kernel});  // [O, I/g, K, K]
  if (spec.bias) bias = Tensor::zeros({spec.out});                                      // [O]
  if (has_bn()) {
    gamma = Tensor::full({spec.out}, 1.f);        // [O]
    beta = Tensor::zeros({spec.out});             // [O]
    running_mean = Tensor::zeros({spec.out});     // [O]
    running_var = Tensor::full({spec.out}, 1.f);  // [O]
  }
}

namespace {
// TF SAME: out = ceil(in / s), total = max((out - 1) * s + k - in, 0), before = total / 2.
std::pair<int64_t, int64_t> same_pad(int64_t in, int64_t k, int64_t s) {
  const int64_t out = (in + s - 1) / s;
  const int64_t total = std::max<int64_t>((out - 1) * s + k - in, 0);
  return {total / 2, total - total / 2};
}
}  // namespace

ops::Conv2dParams conv_params(const ConvGeometry& g, int64_t h, int64_t w) {
  if (!g.tf_same) return ops::Conv2dParams::symmetric(g.stride, g.pad, 1, g.groups);
  const auto [top, bottom] = same_pad(h, g.kernel, g.stride);
  const auto [left, right] = same_pad(w, g.kernel, g.stride);
  ops::Conv2dParams p;
  p.stride_h = p.stride_w = g.stride;
  p.pad_top = top, p.pad_bottom = bottom, p.pad_left = left, p.pad_right = right;
  p.groups = g.groups;
  return p;
}

ConvGeometry ConvUnit::geometry() const {
  const bool same = spec.pad == PadMode::tf_same;
  return ConvGeometry{spec.in, spec.out, spec.kernel, spec.stride, spec.groups, same, same ? 0 : spec.kernel / 2};
}

ops::Conv2dParams ConvUnit::params(int64_t h, int64_t w) const { return conv_params(geometry(), h, w); }

int64_t ConvUnit::out_size(int64_t in_size) const {
  const ops::Conv2dParams p = params(in_size, in_size);
  return (in_size + p.pad_top + p.pad_bottom - spec.kernel) / spec.stride + 1;
}

int64_t ConvUnit::macs(int64_t in_h, int64_t in_w) const {
  const int64_t oh = out_size(in_h), ow = out_size(in_w);
  return spec.out * (spec.in / spec.groups) * spec.kernel * spec.kernel * oh * ow;
}

namespace {
thread_local std::shared_ptr<LayerHook> t_hook;
}  // namespace

void bind_layer_hook(std::shared_ptr<LayerHook> hook) { t_hook = std::move(hook); }
LayerHook* bound_layer_hook() { return t_hook.get(); }

Tensor ConvUnit::forward(const Tensor& x_in, bool training, bool fold) {
  LayerHook* hook = t_hook.get();
  const Tensor x = hook ? hook->on_input(spec.conv, 0, x_in) : x_in;  // [N, C, H, W]
  const ops::Conv2dParams p = params(x.size(2), x.size(3));
  if (!has_bn())
    return hook ? ops::conv2d(x, hook->on_weight(spec.conv, weight), hook->on_bias(spec.conv, bias), p)
                : ops::conv2d(x, weight, bias, p);
  if (fold && !training) {
    const ops::FoldedConv f = ops::fold_bn(weight, bias, gamma, beta, running_mean, running_var, spec.eps);
    return hook ? ops::conv2d(x, hook->on_weight(spec.conv, f.weight), hook->on_bias(spec.conv, f.bias), p)
                : ops::conv2d(x, f.weight, f.bias, p);
  }
  const Tensor y = ops::conv2d(x, hook ? hook->on_weight(spec.conv, weight) : weight, bias, p);  // [N, O, OH, OW]
  // training mode updates running_mean / running_var in place (momentum 0.1, as PyTorch)
  return ops::batch_norm(y, gamma, beta, running_mean, running_var, training, 0.1f, spec.eps);
}

void ConvUnit::collect(NamedTensors& out, bool params_only) {
  out.emplace_back(spec.conv + ".weight", &weight);
  if (spec.bias) out.emplace_back(spec.conv + ".bias", &bias);
  if (!has_bn()) return;
  out.emplace_back(spec.bn + ".weight", &gamma);
  out.emplace_back(spec.bn + ".bias", &beta);
  if (params_only) return;
  out.emplace_back(spec.bn + ".running_mean", &running_mean);
  out.emplace_back(spec.bn + ".running_var", &running_var);
}

namespace {
Tensor take(const io::TensorMap& map, const std::string& name, const Shape& shape, const std::string& file) {
  const Tensor& t = io::require(map, name, shape, file);
  check(t.dtype() == DType::f32 || t.dtype() == DType::f16 || t.dtype() == DType::bf16,
        "weights '{}': tensor '{}' has dtype {} but a float type (f32, f16, bf16) expected", file, name,
        dtype_name(t.dtype()));
  return t.to(DType::f32);  // fresh contiguous f32 copy
}
}  // namespace

void ConvUnit::load(const io::TensorMap& map, const std::string& file) {
  NamedTensors ts;
  collect(ts, false);
  for (auto& [name, t] : ts) *t = take(map, name, t->shape(), file);
}

LinearUnit::LinearUnit(std::string n, int64_t i, int64_t o) : name(std::move(n)), in(i), out(o) {
  weight = Tensor::zeros({out, in});  // [out, in]
  bias = Tensor::zeros({out});        // [out]
}

Tensor LinearUnit::forward(const Tensor& x) const {
  LayerHook* hook = t_hook.get();
  if (!hook) return ops::linear(x, weight, bias);
  return ops::linear(hook->on_input(name, 0, x), hook->on_weight(name, weight),
                     hook->on_bias(name, bias));  // [..., out]
}

void LinearUnit::collect(NamedTensors& o, bool) {
  o.emplace_back(name + ".weight", &weight);
  o.emplace_back(name + ".bias", &bias);
}

void LinearUnit::load(const io::TensorMap& map, const std::string& file) {
  weight = take(map, name + ".weight", weight.shape(), file);
  bias = take(map, name + ".bias", bias.shape(), file);
}

void QuantGraph::add(std::string name, LayerKind kind, std::string weight, int64_t macs,
                     std::vector<std::string> producers, ConvGeometry conv) {
  QuantLayer l;
  l.conv = conv;
  l.name = std::move(name);
  l.kind = kind;
  l.weight = std::move(weight);
  l.macs = macs;
  l.producers = std::move(producers);
  layers_.push_back(std::move(l));
}

std::vector<QuantLayer> QuantGraph::finish() const {
  std::vector<QuantLayer> out = layers_;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < out.size(); ++i) index[out[i].name] = i;
  auto at = [&](const std::string& n) -> QuantLayer& {
    auto it = index.find(n);
    check(it != index.end(), "quant graph: unknown layer '{}'", n);
    return out[it->second];
  };
  for (const QuantLayer& l : layers_)
    for (const std::string& p : l.producers) at(p).consumers.push_back(l.name);
  std::vector<std::set<std::string>> partners(out.size());
  for (const auto& add : adds_)
    for (const std::string& a : add)
      for (const std::string& b : add)
        if (a != b) partners[index.at(at(a).name)].insert(b);
  for (size_t i = 0; i < out.size(); ++i) {
    // keep execution order for determinism
    for (const QuantLayer& l : out)
      if (partners[i].count(l.name)) out[i].residual_partners.push_back(l.name);
  }
  return out;
}

bool CnnModel::fold_now(bool training) const {
  bind_layer_hook(hook_);
  return fold_bn_ && !training && !autograd::grad_mode_enabled();
}

std::vector<CnnStep> CnnModel::inference_steps() const {
  fail("model '{}' does not describe its forward as inference steps (no native executor)", name());
}

void CnnModel::remove_batch_norm() {
  for (const CnnStep& s : inference_steps()) {
    if (s.op != CnnStep::Op::conv || !s.conv->has_bn()) continue;
    // inference_steps() hands out const pointers to units this (non-const) model owns; every conv unit of
    // the forward is in it once.
    ConvUnit& u = const_cast<ConvUnit&>(*s.conv);
    if (!u.spec.bias) u.bias = Tensor::zeros({u.spec.out});  // [O]
    u.gamma = u.beta = u.running_mean = u.running_var = Tensor();
    u.spec.bn.clear();
    u.spec.bias = true;
  }
}

std::string safetensors_layout(const std::map<std::string, std::string>& metadata) {
  auto it = metadata.find("layout");
  return it == metadata.end() ? std::string() : it->second;
}

float parse_bn_eps(const std::string& value, const std::string& file) {
  // strtod accepts leading spaces, "nan", "inf" and hex floats: only a plain decimal is let through to it
  const bool plain = !value.empty() && value.find_first_not_of("0123456789.eE+-") == std::string::npos;
  char* end = nullptr;
  const double v = plain ? std::strtod(value.c_str(), &end) : 0.0;
  if (!plain || end != value.c_str() + value.size())
    fail("weights '{}': __metadata__ field 'bn_eps' is '{}', not a decimal number", file, value);
  if (!(v >= kMinBnEps && v <= kMaxBnEps))
    fail("weights '{}': __metadata__ field 'bn_eps' is '{}', outside the accepted range [{}, {}]", file, value,
         kMinBnEps, kMaxBnEps);
  return float(v);
}

namespace {
double name_phase(const std::string& name) {
  uint64_t h = 0;
  for (size_t j = 0; j < name.size(); ++j) h += (j + 1) * uint64_t(uint8_t(name[j]));
  return 0.1 * double(h % 997);
}
bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
}  // namespace

void formula_init(const std::string& name, Tensor& t) {
  check(t.dtype() == DType::f32 && t.is_contiguous(), "formula_init: '{}' must be contiguous f32", name);
  double a = 0, b = 0.1;
  if (ends_with(name, "running_mean")) {
    a = 0, b = 0.1;
  } else if (ends_with(name, "running_var")) {
    a = 0.75, b = 0.25;
  } else if (ends_with(name, ".weight") && t.dim() == 1) {
    a = 1, b = 0.2;
  } else if (ends_with(name, ".bias")) {
    a = 0, b = 0.1;
  } else {
    const double fan_in = double(t.numel()) / double(t.size(0));
    a = 0, b = std::sqrt(3.0 / fan_in);
  }
  const double phase = name_phase(name);
  float* p = t.data<float>();  // [numel]
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = float(a + b * std::sin(double(i) * 0.37 + phase));
}

void formula_init(Model& m) {
  for (auto& [name, t] : m.named_tensors()) formula_init(name, *t);
}

Tensor formula_input(int64_t n, int64_t h, int64_t w) {
  Tensor x = Tensor::zeros({n, 3, h, w});  // [n, 3, h, w]
  float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] = float(std::sin(double(i) * 0.11 + 0.5) * 1.5);
  return x;
}

}  // namespace mpq::models
