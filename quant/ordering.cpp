#include "quant/ordering.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "quant/quantizer.h"
#include "quant/splits.h"

namespace mpq::quant {

double hessian_omega(double trace, const Tensor& w, Precision p, int64_t group) {
  check(w.numel() > 0, "hessian_omega: empty weight");
  Tensor q;
  switch (p) {
    case Precision::fp32:
      return 0.0;
    case Precision::fp16:
      q = fake_quant_f16(w);
      break;
    case Precision::bf16:
      q = round_to_bf16(w);
      break;
    case Precision::int8:
      q = fake_quant_weight(w, {8, 0});
      break;
    case Precision::int4:
      q = fake_quant_weight(w, {4, group});
      break;
  }
  return trace / double(w.numel()) * quant_error_sq(w, q);
}

LayerScores augmented_scores(const std::vector<double>& omega, const DependencyResult& dep,
                             bool positive_interactions) {
  const size_t n = dep.layers.size();
  check(omega.size() == n && dep.single.size() == n, "augmented_scores: {} omegas, {} layers, {} single effects",
        omega.size(), n, dep.single.size());
  LayerScores s;
  s.precision = dep.precision;
  s.layers = dep.layers;
  s.omega = omega;
  s.single = dep.single;
  s.half_interaction.assign(n, 0.0);
  for (const PairEffect& p : dep.pairs) {
    const double v = positive_interactions ? std::max(p.interaction, 0.0) : p.interaction;
    s.half_interaction[size_t(p.i)] += 0.5 * v;
    s.half_interaction[size_t(p.j)] += 0.5 * v;
  }
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) num += omega[i] * dep.single[i], den += omega[i] * omega[i];
  s.scale = den > 0 ? std::max(num / den, 0.0) : 0.0;
  for (size_t i = 0; i < n; ++i) s.augmented.push_back(s.scale * omega[i] + s.single[i] + s.half_interaction[i]);
  return s;
}

LayerScores per_saving(const LayerScores& s, const std::vector<double>& saved) {
  const size_t n = s.layers.size();
  check(saved.size() == n, "per_saving: {} savings for {} layers", saved.size(), n);
  LayerScores out = s;
  const double last = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < n; ++i) {
    const auto per = [&](double v) { return saved[i] > 0 ? v / saved[i] : last; };
    out.omega[i] = per(s.omega[i]);
    out.single[i] = per(s.single[i]);
    out.half_interaction[i] = per(s.half_interaction[i]);
    out.augmented[i] = per(s.augmented[i]);
  }
  return out;
}

std::vector<int> order_by(const std::vector<double>& score) {
  std::vector<int> idx(score.size());  // [N]
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return score[size_t(a)] < score[size_t(b)]; });
  return idx;
}

std::vector<int> make_ordering(const LayerScores& s, OrderKind kind, uint64_t seed) {
  switch (kind) {
    case OrderKind::augmented:
      return order_by(s.augmented);
    case OrderKind::hessian:
      return order_by(s.omega);
    case OrderKind::single:
      return order_by(s.single);
    case OrderKind::random: {
      std::vector<int> out;
      for (int64_t i : seeded_permutation(int64_t(s.layers.size()), seed)) out.push_back(int(i));
      return out;
    }
  }
  fail("ordering kind {} unknown", int(kind));
}

}  // namespace mpq::quant
