// Graph recording (the part of autograd that every op needs): grad mode, Node::attach_self, record().
// The reverse pass that walks the recorded graph is core/autograd/engine.cpp, a layer above the ops.
#include "core/autograd/node.h"

namespace mpq::autograd {

namespace {
thread_local bool g_grad_mode = true;
}  // namespace

bool grad_mode_enabled() { return g_grad_mode; }
void set_grad_mode(bool on) { g_grad_mode = on; }

Tensor Node::attach_self(const Tensor& detached_output) {
  Tensor t = detached_output.detach();
  if (grad_mode_enabled()) t.set_grad_fn(shared_from_this());
  return t;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!grad_mode_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}
bool needs_grad(std::initializer_list<Tensor> inputs) { return needs_grad(std::vector<Tensor>(inputs)); }

Tensor record(Tensor out, std::shared_ptr<Node> node, const std::vector<Tensor>& inputs) {
  if (!needs_grad(inputs)) return out;
  node->edges.resize(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    if (!t.defined() || !t.requires_grad()) continue;
    if (t.grad_fn())
      node->edges[i].fn = t.grad_fn();
    else
      node->edges[i].leaf = std::shared_ptr<TensorImpl>(t.impl(), [keep = t](TensorImpl*) {});
  }
  node->out_shape = out.shape();
  out.set_grad_fn(std::move(node));
  return out;
}

}  // namespace mpq::autograd
