#include "quant/dependency.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <set>

#include "core/error.h"

namespace mpq::quant {

std::vector<double> DependencyResult::half_interaction_sum() const {
  std::vector<double> h(layers.size(), 0.0);  // [N]
  for (const PairEffect& p : pairs) {
    h[size_t(p.i)] += 0.5 * p.interaction;
    h[size_t(p.j)] += 0.5 * p.interaction;
  }
  return h;
}

std::vector<std::pair<int, int>> dependency_pairs(const std::vector<models::QuantLayer>& layers,
                                                  const DependencyOptions& opt) {
  check(opt.window >= 0, "dependency: window {} must be >= 0", opt.window);
  const int n = int(layers.size());
  std::map<std::string, int> index;
  for (int i = 0; i < n; ++i) index[layers[size_t(i)].name] = i;
  std::set<std::pair<int, int>> out;
  auto add = [&](int a, int b) {
    if (a != b) out.insert({std::min(a, b), std::max(a, b)});
  };
  auto add_named = [&](int i, const std::vector<std::string>& names) {
    for (const std::string& nm : names) {
      auto it = index.find(nm);
      check(it != index.end(), "dependency: layer '{}' names unknown neighbour '{}'", layers[size_t(i)].name, nm);
      add(i, it->second);
    }
  };
  for (int i = 0; i < n; ++i) {
    if (opt.all_pairs) {
      for (int j = i + 1; j < n; ++j) add(i, j);
      continue;
    }
    if (opt.edges) add_named(i, layers[size_t(i)].producers), add_named(i, layers[size_t(i)].consumers);
    if (opt.residual) add_named(i, layers[size_t(i)].residual_partners);
    for (int j = i + 1; j <= std::min(n - 1, i + opt.window); ++j) add(i, j);
  }
  return {out.begin(), out.end()};
}

DependencyResult measure_dependencies(const std::vector<models::QuantLayer>& layers, const SetLoss& loss,
                                      const DependencyOptions& opt,
                                      const std::function<void(int64_t, int64_t)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto pairs = dependency_pairs(layers, opt);
  const int n = int(layers.size());
  const int64_t total = 1 + n + int64_t(pairs.size());
  DependencyResult r;
  r.precision = opt.precision, r.base = opt.base;
  for (const auto& l : layers) r.layers.push_back(l.name);
  auto eval = [&](const std::vector<int>& s) {
    const double v = loss(s);
    check(std::isfinite(v), "dependency: loss of a {}-layer set is not finite ({})", s.size(), v);
    ++r.evaluations;
    if (progress) progress(r.evaluations, total);
    return v;
  };
  r.base_loss = eval({});
  for (int i = 0; i < n; ++i) r.single.push_back(eval({i}) - r.base_loss);
  for (const auto& [i, j] : pairs) {
    PairEffect p;
    p.i = i, p.j = j;
    p.dl_pair = eval({i, j}) - r.base_loss;
    p.interaction = p.dl_pair - r.single[size_t(i)] - r.single[size_t(j)];
    r.pairs.push_back(p);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

SetLoss model_set_loss(models::Model& m, TaskEvaluator& ev, const std::vector<int64_t>& indices,
                       const Calibration& calib, const DependencyOptions& opt) {
  const std::vector<models::QuantLayer> names = m.quant_layers();  // the layers, in index order
  auto ref = std::make_shared<std::vector<double>>();              // [N * C] fp32 output probabilities (distill)
  int64_t classes = 0;
  if (opt.distill) {
    ScopedHook none(m, nullptr);
    const Tensor z = ev.outputs(m, indices).contiguous();  // [N, C] logits
    check(z.dim() == 2, "dependency: model outputs {} are not [N, C] logits", shape_str(z.shape()));
    classes = z.size(1);
    const std::vector<float> v = z.to_vector();
    ref->resize(v.size());
    for (int64_t r = 0; r < z.size(0); ++r) {
      double mx = -1e300, se = 0;
      for (int64_t c = 0; c < classes; ++c) mx = std::max(mx, double(v[size_t(r * classes + c)]));
      for (int64_t c = 0; c < classes; ++c) se += std::exp(double(v[size_t(r * classes + c)]) - mx);
      for (int64_t c = 0; c < classes; ++c)
        (*ref)[size_t(r * classes + c)] = std::exp(double(v[size_t(r * classes + c)]) - mx) / se;
    }
  }
  return [&m, &ev, indices, &calib, opt, names, ref, classes](const std::vector<int>& set) {
    std::vector<Precision> p(names.size(), opt.base);
    for (int i : set) {
      check(i >= 0 && size_t(i) < names.size(), "dependency: layer index {} outside [0, {})", i, names.size());
      p[size_t(i)] = opt.precision;
    }
    ScopedHook scope(m, std::make_shared<FakeQuantHook>(make_assignment(names, p, calib, opt.int4_group, opt.rounded)));
    if (!opt.distill) return ev.evaluate(m, indices).loss;
    const Tensor z = ev.outputs(m, indices).contiguous();  // [N, C]
    check(z.numel() == int64_t(ref->size()), "dependency: outputs {} differ from the reference", shape_str(z.shape()));
    const std::vector<float> v = z.to_vector();
    const int64_t rows = z.size(0);
    double loss = 0;  // sum_r sum_c -p_rc log softmax(z_r)_c
    for (int64_t r = 0; r < rows; ++r) {
      double mx = -1e300, se = 0;
      for (int64_t c = 0; c < classes; ++c) mx = std::max(mx, double(v[size_t(r * classes + c)]));
      for (int64_t c = 0; c < classes; ++c) se += std::exp(double(v[size_t(r * classes + c)]) - mx);
      const double lse = mx + std::log(se);
      for (int64_t c = 0; c < classes; ++c)
        loss -= (*ref)[size_t(r * classes + c)] * (double(v[size_t(r * classes + c)]) - lse);
    }
    return loss / double(rows);
  };
}

}  // namespace mpq::quant
