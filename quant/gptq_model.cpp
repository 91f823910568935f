#include "quant/gptq_model.h"

#include <sys/resource.h>

#include <chrono>

#include "core/autograd/node.h"
#include "core/error.h"
#include "models/cnn_common.h"
#include "quant/fake_quant.h"

namespace mpq::quant {

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::map<std::string, Tensor*> tensor_map(models::Model& m) {
  std::map<std::string, Tensor*> out;
  for (auto& [n, t] : m.named_tensors()) out[n] = t;
  return out;
}

// f64 bytes of a layer's statistics, from its weight parameter's shape.
int64_t stats_bytes(const models::QuantLayer& l, const std::map<std::string, Tensor*>& t) {
  auto it = t.find(l.weight);
  check(it != t.end(), "weight rounding: layer '{}' weight '{}' not found", l.name, l.weight);
  const Tensor& w = *it->second;
  const int64_t K = w.numel() / w.size(0), blocks = l.kind == models::LayerKind::linear ? 1 : l.conv.groups;
  return blocks * (K * K + K) * int64_t(sizeof(double));
}

}  // namespace

std::vector<models::QuantLayer> weight_layers(const models::Model& m) {
  std::vector<models::QuantLayer> out;
  for (const models::QuantLayer& l : m.quant_layers())
    if (l.kind != models::LayerKind::attention_matmul && l.kind != models::LayerKind::embedding) out.push_back(l);
  return out;
}

Tensor RoundedWeightsHook::on_weight(const std::string& layer, const Tensor& w) {
  auto it = w_.find(layer);
  if (it == w_.end()) return w;
  check(it->second.shape() == w.shape(), "rounded weights: layer '{}' weight {} but the record holds {}", layer,
        shape_str(w.shape()), shape_str(it->second.shape()));
  return it->second;
}

Tensor RoundedWeightsHook::on_input(const std::string& layer, int operand, const Tensor& x) {
  if (!quantize_inputs_) return x;
  auto it = act_.find(layer);
  if (it == act_.end()) return x;
  auto op = it->second.find(operand);
  return op == it->second.end() ? x : fake_quant_act(x, op->second.params);
}

Tensor& output_bias_parameter(models::Model& m, const std::string& layer, std::string* name) {
  std::string pname = layer + ".bias";
  if (auto* cnn = dynamic_cast<models::CnnModel*>(&m)) {
    for (const models::CnnStep& st : cnn->inference_steps())
      if (st.conv && st.conv->spec.conv == layer) {
        // folded BN: bias' = beta + (b - mean) * gamma / sqrt(var + eps), so beta shifts it one to one
        pname = st.conv->has_bn() ? st.conv->spec.bn + ".bias" : layer + ".bias";
        check(st.conv->has_bn() || st.conv->spec.bias, "bias correction: conv '{}' has neither a bias nor a BN", layer);
      }
  }
  const auto t = tensor_map(m);
  auto it = t.find(pname);
  check(it != t.end(), "bias correction: layer '{}' has no parameter '{}'", layer, pname);
  if (name) *name = pname;
  return *it->second;
}

std::vector<models::Batch> task_batches(TaskEvaluator& ev, const std::vector<int64_t>& calib, int64_t batch) {
  check(batch > 0, "weight rounding: batch {} must be positive", batch);
  std::vector<models::Batch> out;
  for (size_t b = 0; b < calib.size(); b += size_t(batch))
    out.push_back(ev.batch({calib.begin() + b, calib.begin() + std::min(calib.size(), b + size_t(batch))}));
  return out;
}

CapturedLayers capture_layers(models::Model& m, const std::vector<models::Batch>& calib,
                              const std::vector<models::QuantLayer>& layers, std::shared_ptr<models::LayerHook> inner,
                              const CaptureOptions& opt, int64_t max_bytes, const CaptureReference* reference) {
  check(!calib.empty(), "weight rounding: no calibration samples");
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = process_cpu_seconds();
  const auto tensors = tensor_map(m);
  CapturedLayers out;
  autograd::NoGradGuard ng;
  size_t next = 0;
  while (next < layers.size()) {
    std::vector<models::QuantLayer> pass;
    int64_t bytes = 0;
    while (next < layers.size() && (pass.empty() || bytes + stats_bytes(layers[next], tensors) <= max_bytes)) {
      bytes += stats_bytes(layers[next], tensors);
      pass.push_back(layers[next++]);
    }
    auto hook = std::make_shared<StatsHook>(pass, inner, opt);
    std::shared_ptr<InputRecorder> rec;
    if (reference) {
      std::set<std::string> names;
      for (const auto& l : pass) names.insert(l.name);
      rec = std::make_shared<InputRecorder>(names, reference->inner, opt.stop_early);
      hook->set_reference(&rec->inputs());
    }
    auto run = [&](std::shared_ptr<models::LayerHook> h, const models::Batch& mb) {
      ScopedHook scope(m, std::move(h));
      try {
        m.forward(mb, false);
      } catch (const StopForward&) {
      }
    };
    for (const models::Batch& mb : calib) {
      if (rec) {
        if (reference->before) reference->before();
        rec->begin_forward();
        run(rec, mb);
        if (reference->after) reference->after();
      }
      hook->set_row_mask(mb.mask);
      hook->begin_forward();
      run(hook, mb);
    }
    for (auto& [name, st] : hook->take_stats()) out.stats[name] = std::move(st);
    for (const auto& [name, w] : hook->weights()) out.weights[name] = w;
    for (const auto& l : pass)
      check(out.stats.count(l.name) && out.weights.count(l.name),
            "weight rounding: layer '{}' was not reached by the forward (hook not wired?)", l.name);
    ++out.passes;
  }
  out.seconds = seconds_since(t0);
  out.cpu_seconds = process_cpu_seconds() - c0;
  return out;
}

namespace {

// Waves: every layer whose upstream weight layers (through attention matmuls) are all in earlier waves.
std::vector<std::vector<models::QuantLayer>> make_waves(const models::Model& m) {
  const std::vector<models::QuantLayer> all = m.quant_layers();
  std::map<std::string, const models::QuantLayer*> by;
  for (const auto& l : all) by[l.name] = &l;
  std::map<std::string, std::set<std::string>> up;  // layer -> upstream weight layers
  std::function<const std::set<std::string>&(const std::string&)> upstream =
      [&](const std::string& n) -> const std::set<std::string>& {
    auto it = up.find(n);
    if (it != up.end()) return it->second;
    std::set<std::string> s;
    for (const std::string& p : by.at(n)->producers) {
      if (by.at(p)->kind != models::LayerKind::attention_matmul) s.insert(p);
      const auto& pu = upstream(p);
      s.insert(pu.begin(), pu.end());
    }
    return up[n] = std::move(s);
  };
  std::set<std::string> done;
  std::vector<std::vector<models::QuantLayer>> waves;
  const std::vector<models::QuantLayer> todo = weight_layers(m);
  while (done.size() < todo.size()) {
    std::vector<models::QuantLayer> wave;
    for (const auto& l : todo) {
      if (done.count(l.name)) continue;
      bool ready = true;
      for (const std::string& u : upstream(l.name)) ready = ready && done.count(u);
      if (ready) wave.push_back(l);
    }
    check(!wave.empty(), "weight rounding: the layer graph of '{}' has a cycle", m.name());
    for (const auto& l : wave) done.insert(l.name);
    waves.push_back(std::move(wave));
  }
  return waves;
}

}  // namespace

RoundedModel round_model(models::Model& m, const std::vector<models::Batch>& calib, const Calibration& act,
                         const ModelRoundingOptions& opt, const CapturedLayers* cached,
                         const std::function<void(const std::string&)>& log) {
  RoundedModel out;
  auto sim = std::make_shared<RoundedWeightsHook>(act, opt.quantize_inputs);  // the capture's inner hook
  std::vector<std::vector<models::QuantLayer>> passes;
  if (opt.sequential) {
    check(opt.waves_per_pass > 0, "weight rounding: waves_per_pass {} must be positive", opt.waves_per_pass);
    const auto waves = make_waves(m);
    for (size_t i = 0; i < waves.size(); i += size_t(opt.waves_per_pass)) {
      passes.emplace_back();
      for (size_t j = i; j < std::min(waves.size(), i + size_t(opt.waves_per_pass)); ++j)
        passes.back().insert(passes.back().end(), waves[j].begin(), waves[j].end());
    }
  } else {
    passes.push_back(weight_layers(m));
  }
  if (opt.only)
    for (auto& pass : passes) std::erase_if(pass, [&](const models::QuantLayer& l) { return !opt.only(l); });
  std::erase_if(passes, [](const auto& pass) { return pass.empty(); });
  auto apply_bias = [&](const std::string& layer, const std::vector<float>& delta) {
    std::string pname;
    Tensor& b = output_bias_parameter(m, layer, &pname);
    if (!out.bias_backup.count(pname)) out.bias_backup[pname] = b.clone();
    check(b.numel() == int64_t(delta.size()) && b.is_contiguous(), "bias correction: '{}' has {} values, {} expected",
          pname, b.numel(), delta.size());
    float* p = b.data<float>();  // [O]
    for (size_t i = 0; i < delta.size(); ++i) p[i] += delta[i];
  };
  std::vector<std::pair<std::string, std::vector<float>>> deferred;
  for (size_t pi = 0; pi < passes.size(); ++pi) {
    CapturedLayers local;
    const CapturedLayers* cap = cached && !opt.sequential ? cached : nullptr;
    if (!cap) {
      CaptureOptions copt = opt.capture;
      copt.stop_early = opt.sequential;
      // the reference forward runs the fp32 network: original biases, no hook
      auto swap = [&] {
        const auto t = tensor_map(m);
        for (auto& [name, v] : out.bias_backup) {
          Tensor cur = t.at(name)->clone();
          t.at(name)->copy_from(v);
          v = cur;
        }
      };
      const CaptureReference ref{nullptr, swap, swap};
      local =
          capture_layers(m, calib, passes[pi], sim, copt, opt.max_capture_bytes, opt.layer.asymmetric ? &ref : nullptr);
      out.capture_seconds += local.seconds;
      out.capture_cpu_seconds += local.cpu_seconds;
      out.passes += local.passes;
      cap = &local;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = process_cpu_seconds();
    for (const models::QuantLayer& l : passes[pi]) {
      const Tensor& w = cap->weights.at(l.name);
      const LayerStats& st = cap->stats.at(l.name);
      const int64_t O = w.size(0), K = w.numel() / O;
      RoundingOptions ro = opt.layer;
      if (opt.int8_layers.count(l.name)) ro.bits = 8, ro.group = 0;
      if (opt.depthwise_exhaustive && l.kind == models::LayerKind::depthwise_conv && K <= kExhaustiveMaxK)
        ro.rounding = Rounding::exhaustive, ro.group = 0, ro.act_order = false;
      if (ro.group > 0 && (ro.group > K || K % ro.group != 0)) {
        out.notes.push_back(
            fmt::format("{}: group {} does not fit its {} inputs: per output channel", l.name, ro.group, K));
        ro.group = 0;
      }
      QuantizedWeight qw = round_weight(w.data<float>(), O, K, &st, ro, l.name);
      out.output_error[l.name] = layer_output_error(w.data<float>(), qw, st);
      const Tensor deq = qw.dequantize(w.shape());
      sim->set_weight(l.name, deq);
      if (!qw.bias_correction.empty()) {
        if (opt.sequential)
          apply_bias(l.name, qw.bias_correction);
        else
          deferred.emplace_back(l.name, qw.bias_correction);
      }
      out.shapes[l.name] = w.shape();
      out.weights[l.name] = std::move(qw);
    }
    out.rounding_seconds += seconds_since(t0);
    out.rounding_cpu_seconds += process_cpu_seconds() - c0;
    if (log)
      log(fmt::format("pass {}/{}: {} layers, capture {:.1f} s, rounding {:.1f} s so far", pi + 1, passes.size(),
                      passes[pi].size(), out.capture_seconds, out.rounding_seconds));
  }
  for (const auto& [layer, delta] : deferred) apply_bias(layer, delta);
  return out;
}

void restore_biases(models::Model& m, const RoundedModel& r) {
  const auto t = tensor_map(m);
  for (const auto& [name, v] : r.bias_backup) t.at(name)->copy_from(v);
}

}  // namespace mpq::quant
