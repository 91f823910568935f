#include "core/autograd/engine.h"

#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "ops/ops.h"

namespace mpq::autograd {

namespace {
// Topological order of the nodes reachable from the roots (roots first), iterative DFS.
std::vector<Node*> topo_order(const std::vector<Node*>& roots) {
  std::vector<Node*> post;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<Node*, size_t>> stack;
  for (Node* r : roots) {
    if (!r || seen.count(r)) continue;
    seen.insert(r);
    stack.push_back({r, 0});
    while (!stack.empty()) {
      auto& [n, i] = stack.back();
      if (i < n->edges.size()) {
        Node* c = n->edges[i++].fn.get();
        if (c && !seen.count(c)) {
          seen.insert(c);
          stack.push_back({c, 0});
        }
      } else {
        post.push_back(n);
        stack.pop_back();
      }
    }
  }
  return {post.rbegin(), post.rend()};
}

Tensor accumulate(const Tensor& acc, const Tensor& g) { return acc.defined() ? ops::add(acc, g) : g; }

struct RunResult {
  std::unordered_map<TensorImpl*, Tensor> leaf_grads;
};

RunResult run(const std::vector<Tensor>& outputs, const std::vector<Tensor>& seeds, bool create_graph,
              bool retain_graph) {
  check(seeds.empty() || seeds.size() == outputs.size(), "backward: {} seeds for {} outputs", seeds.size(),
        outputs.size());
  EnableGradGuard mode(create_graph);
  std::unordered_map<Node*, Tensor> node_grads;
  RunResult res;
  std::vector<Node*> roots;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    if (!(out.requires_grad()))
      fail("backward through a tensor of shape {} that does not require grad", shape_str(out.shape()));
    Tensor seed = (i < seeds.size()) ? seeds[i] : Tensor();
    if (!seed.defined()) {
      if (!(out.numel() == 1)) fail("backward needs a seed for non-scalar output of shape {}", shape_str(out.shape()));
      seed = Tensor::full(out.shape(), 1.0f);
    }
    if (!(seed.shape() == out.shape()))
      fail("backward: seed shape {} for output shape {}", shape_str(seed.shape()), shape_str(out.shape()));
    if (out.grad_fn()) {
      Node* n = out.grad_fn().get();
      node_grads[n] = accumulate(node_grads[n], seed);
      roots.push_back(n);
    } else {
      auto& lg = res.leaf_grads[out.impl()];
      lg = accumulate(lg, seed);
    }
  }
  std::vector<Node*> order = topo_order(roots);
  for (Node* n : order) {
    auto it = node_grads.find(n);
    if (it == node_grads.end()) continue;
    Tensor g = std::move(it->second);
    node_grads.erase(it);
    std::vector<Tensor> in_grads = n->backward(g);
    check(in_grads.size() == n->edges.size(), "autograd: {} returned {} gradients for {} inputs", n->name(),
          in_grads.size(), n->edges.size());
    for (size_t k = 0; k < in_grads.size(); ++k) {
      const Edge& e = n->edges[k];
      if (!e.active() || !in_grads[k].defined()) continue;
      if (e.fn) {
        if (!(in_grads[k].shape() == e.fn->out_shape))
          fail("autograd: {} gave gradient {} for an input of shape {}", n->name(), shape_str(in_grads[k].shape()),
               shape_str(e.fn->out_shape));
        node_grads[e.fn.get()] = accumulate(node_grads[e.fn.get()], in_grads[k]);
      } else {
        if (!(in_grads[k].shape() == e.leaf->shape))
          fail("autograd: {} gave gradient {} for a leaf of shape {}", n->name(), shape_str(in_grads[k].shape()),
               shape_str(e.leaf->shape));
        auto& lg = res.leaf_grads[e.leaf.get()];
        lg = accumulate(lg, in_grads[k]);
      }
    }
  }
  if (!retain_graph) {
    // clearing a node's edges can drop the last owner of its children: hold them all first
    std::vector<std::shared_ptr<Node>> hold;
    hold.reserve(order.size());
    for (Node* n : order) hold.push_back(n->shared_from_this());
    for (Node* n : order) {
      n->release();
      n->edges.clear();
    }
  }
  return res;
}
}  // namespace

void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& seeds, bool create_graph) {
  RunResult r = run(outputs, seeds, create_graph, create_graph);
  for (auto& [impl, g] : r.leaf_grads) {
    if (!impl->requires_grad) continue;
    Tensor gg = create_graph ? g : g.detach();
    impl->grad =
        impl->grad.defined() ? (create_graph ? ops::add(impl->grad, gg) : ops::add(impl->grad, gg).detach()) : gg;
  }
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& seeds, bool create_graph, bool retain_graph) {
  RunResult r = run(outputs, seeds, create_graph, retain_graph || create_graph);
  std::vector<Tensor> out;
  out.reserve(inputs.size());
  for (const Tensor& in : inputs) {
    if (!(in.is_leaf())) fail("autograd::grad: inputs must be leaves (shape {})", shape_str(in.shape()));
    auto it = r.leaf_grads.find(in.impl());
    if (it == r.leaf_grads.end())
      out.push_back(Tensor::zeros(in.shape()));
    else
      out.push_back(create_graph ? it->second : it->second.detach());
  }
  return out;
}

std::vector<Tensor> hvp(const Tensor& loss, const std::vector<Tensor>& params, const std::vector<Tensor>& v,
                        std::vector<Tensor>* grads_out) {
  check(v.size() == params.size(), "hvp: {} vectors for {} params", v.size(), params.size());
  for (size_t i = 0; i < v.size(); ++i)
    if (!(v[i].shape() == params[i].shape()))
      fail("hvp: vector {} has shape {}, param has {}", i, shape_str(v[i].shape()), shape_str(params[i].shape()));
  std::vector<Tensor> g = grad({loss}, params, {}, /*create_graph=*/true, /*retain_graph=*/true);
  if (grads_out) {
    grads_out->clear();
    for (auto& t : g) grads_out->push_back(t.detach());
  }
  Tensor s;
  {
    EnableGradGuard on(true);
    for (size_t i = 0; i < g.size(); ++i) {
      if (!g[i].requires_grad()) continue;  // gradient independent of params: zero curvature
      Tensor d = ops::sum(ops::mul(g[i], v[i]));
      s = s.defined() ? ops::add(s, d) : d;
    }
  }
  if (!s.defined()) {
    std::vector<Tensor> zeros;
    for (auto& p : params) zeros.push_back(Tensor::zeros(p.shape()));
    return zeros;
  }
  return grad({s}, params, {}, false, false);
}

}  // namespace mpq::autograd
