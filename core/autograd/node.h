// Reverse-mode autograd node (micrograd-sized, with PyTorch's create_graph semantics).
//
// Every differentiable op returns one output tensor. When an input requires grad and grad mode is on,
// the op attaches a Node to its output. Node::backward receives the gradient of the output and returns one
// gradient per input (an undefined Tensor where the input needs none). Backward rules are written with the
// same differentiable ops as the forward, so with grad mode on during backward (create_graph = true) the
// backward pass records its own graph, and differentiating it again gives exact Hessian-vector products.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mpq::autograd {

// Grad mode: thread-local switch; ops record graph only while it is on.
bool grad_mode_enabled();
void set_grad_mode(bool on);
struct NoGradGuard {
  bool prev;
  NoGradGuard() : prev(grad_mode_enabled()) { set_grad_mode(false); }
  ~NoGradGuard() { set_grad_mode(prev); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;
};
struct EnableGradGuard {
  bool prev;
  explicit EnableGradGuard(bool on) : prev(grad_mode_enabled()) { set_grad_mode(on); }
  ~EnableGradGuard() { set_grad_mode(prev); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;
};

// Where an input's gradient goes: into the node that produced it, or into a leaf that requires grad.
struct Edge {
  std::shared_ptr<Node> fn;          // non-null for an interior tensor
  std::shared_ptr<TensorImpl> leaf;  // non-null for a leaf with requires_grad
  bool active() const { return fn || leaf; }
};

struct Node : std::enable_shared_from_this<Node> {
  std::vector<Edge> edges;  // one per input, in the order backward returns gradients
  Shape out_shape;          // shape of the output this node produced
  virtual ~Node() = default;
  virtual const char* name() const = 0;
  virtual std::vector<Tensor> backward(const Tensor& grad_out) = 0;
  // Drops saved tensors once the graph is freed after a backward without retain.
  virtual void release() {}
  bool needs_input_grad(size_t i) const { return i < edges.size() && edges[i].active(); }
  // The node's own output (saved detached to avoid a reference cycle), re-attached to this node so that
  // backward rules that use the output stay differentiable.
  Tensor attach_self(const Tensor& detached_output);
};

// True when grad mode is on and any of the inputs requires grad.
bool needs_grad(std::initializer_list<Tensor> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Records `node` as the producer of `out` with edges to `inputs`; returns out for chaining.
// Does nothing when no input requires grad or grad mode is off.
Tensor record(Tensor out, std::shared_ptr<Node> node, const std::vector<Tensor>& inputs);

}  // namespace mpq::autograd
