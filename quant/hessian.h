// Hessian traces by Hutchinson's estimator on exact Hessian-vector products (core/autograd).
//
// For Rademacher v (entries +-1), E[v^T H v] = Tr(H). With v split into per-parameter blocks v_i,
// E[v_i^T (H v)_i] = Tr(H_ii) since the cross terms E[v_i^T H_ij v_j] vanish, so ONE Hessian-vector
// product per draw estimates the trace of every parameter block (every layer) at once.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace mpq::quant {

struct HutchinsonOptions {
  double rel_tol = 1e-3;  // stop when every block's running mean moved less than this (relative) in a draw
  int min_draws = 8;      // never trust fewer draws: early means can sit still by chance
  int max_draws = 200;    // cap
  uint64_t seed = 0;
  std::function<void(int draw, double largest_move)> progress;  // called after every draw (optional)
};

struct HutchinsonResult {
  std::vector<double> trace;      // per param: mean of v_i^T (H v)_i
  std::vector<double> std_error;  // per param: sample standard deviation / sqrt(draws)
  int draws = 0;
  bool converged = false;  // stopped by the tolerance rather than the cap
};

// `loss` must be a scalar whose graph reaches `params` (leaves). The graph of the first-order gradient
// is built once; each draw is one backward through it.
HutchinsonResult hutchinson_traces(const Tensor& loss, const std::vector<Tensor>& params,
                                   const HutchinsonOptions& opt = {});

// A Rademacher tensor of the given shape from a splitmix64 stream (deterministic per seed).
Tensor rademacher(const Shape& shape, uint64_t seed);

}  // namespace mpq::quant
