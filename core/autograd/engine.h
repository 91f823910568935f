// Reverse-mode engine and Hessian-vector products.
#pragma once
#include <vector>

#include "core/autograd/node.h"

namespace mpq::autograd {

// Back-propagates from `outputs` (seeds default to ones for scalar outputs) and accumulates into the
// .grad of every reachable leaf with requires_grad. With create_graph the accumulated gradients carry
// history (for double backward) and the graph is kept; otherwise the graph's saved tensors are freed.
void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& seeds, bool create_graph = false);
// The same from one output (a scalar, or with an explicit seed of its shape).
inline void backward(const Tensor& output, const Tensor& seed = Tensor(), bool create_graph = false) {
  backward(std::vector<Tensor>{output}, std::vector<Tensor>{seed}, create_graph);
}

// Gradients of `outputs` w.r.t. `inputs` (leaves), returned instead of accumulated. Inputs that the
// outputs do not depend on get zeros. retain_graph defaults to create_graph.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& seeds = {}, bool create_graph = false, bool retain_graph = false);

// Exact Hessian-vector product H v of scalar `loss` w.r.t. `params`, by double backward:
// g = dL/dp with create_graph, then d(sum_i <g_i, v_i>)/dp. `v` has one tensor per param (same shapes).
// When `grads_out` is non-null it receives the (detached) first-order gradients as a by-product.
std::vector<Tensor> hvp(const Tensor& loss, const std::vector<Tensor>& params, const std::vector<Tensor>& v,
                        std::vector<Tensor>* grads_out = nullptr);

}  // namespace mpq::autograd
