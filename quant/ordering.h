// Per-layer sensitivity scores and the orderings the bisection walks (least sensitive first).
//
//   Omega_i(p)     = Tr(H_i) / n_i * ||Q_p(W_i) - W_i||^2               (HAWQ-V2; Hessian only)
//   a              = argmin_a sum_i (a * Omega_i - dL_i)^2 = sum_i Omega_i dL_i / sum_i Omega_i^2
//                    (least squares through the origin: one factor mapping Omega to loss units; 0 when
//                    every Omega_i is 0)
//                    clamped at 0: a negative fit (Omega anti-correlated with the measured effects) would
//                    invert the Hessian information, so it is dropped instead
//   augmented_i(p) = a * Omega_i + dL_i + 1/2 sum_j I_ij                (j over the measured neighbourhood)
// dL and I come from quant/dependency.h at the same precision p. With `positive_interactions` only I_ij > 0
// (pairs that hurt more together than apart) count. Why: on MobileNetV2 int4 the pair (depthwise, its 1x1
// project) has a large NEGATIVE I_ij because the loss saturates once the very sensitive depthwise is
// quantized; the signed sum then ranked the project layers least sensitive (first in the ordering), and
// lowering the first of them cost 12 top-1 points on the search split (mpq search, seed 0).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/enum_table.h"
#include "core/tensor.h"
#include "quant/dependency.h"
#include "quant/fake_quant.h"

namespace mpq::quant {

// w: the layer's weight as the hook quantizes it ([O, ...] f32); group: int4 weight group (0: per channel).
double hessian_omega(double trace, const Tensor& w, Precision p, int64_t group = 0);

struct LayerScores {
  Precision precision = Precision::int8;
  std::vector<std::string> layers;       // [N]
  std::vector<double> omega;             // [N] Omega_i(p)
  std::vector<double> single;            // [N] dL_i
  std::vector<double> half_interaction;  // [N] 1/2 sum_j I_ij
  std::vector<double> augmented;         // [N] a * Omega_i + dL_i + 1/2 sum_j I_ij
  double scale = 0;                      // a
};

// omega: [N] in the order of dep.layers.
LayerScores augmented_scores(const std::vector<double>& omega, const DependencyResult& dep,
                             bool positive_interactions = true);

enum class OrderKind { augmented, hessian, single, random };
inline constexpr std::array<EnumName<OrderKind>, 4> kOrderNames{{{OrderKind::augmented, "augmented"},
                                                                 {OrderKind::hessian, "hessian"},
                                                                 {OrderKind::single, "single"},
                                                                 {OrderKind::random, "random"}}};
inline const char* order_name(OrderKind k) { return enum_name(kOrderNames, k); }
inline OrderKind parse_order(const std::string& s) { return parse_enum(kOrderNames, s, "ordering"); }

// The same scores per unit of what lowering each layer saves (saved: [N], > 0): every score is divided by
// saved_i, so an ordering walks the layers that buy the most saving per unit of damage first (the greedy
// order of a knapsack; `mpq search --order-score per-byte`). The motive: with --objective bytes, sensitivity
// alone puts a small, insensitive layer ahead of a large, nearly as insensitive one that would save ten times
// the bytes. A layer that saves nothing (saved_i <= 0) goes last. Negative scores (noise in the measured
// effects) stay negative and so stay first.
LayerScores per_saving(const LayerScores& s, const std::vector<double>& saved);

// Layer indices, least sensitive (smallest score) first; ties keep the layer order. random: a seeded
// permutation (quant/splits.h).
std::vector<int> make_ordering(const LayerScores& s, OrderKind kind, uint64_t seed = 0);
std::vector<int> order_by(const std::vector<double>& score);  // ascending, stable

}  // namespace mpq::quant
