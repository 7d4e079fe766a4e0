// The backward engine: a topological order of the Nodes reachable from the root, then one pass in
// reverse, summing the gradients that reach each Node from several consumers before calling it.
#include <unordered_map>
#include <unordered_set>

#include "framework/autograd/node.h"
#include "framework/ops/ops.h"

namespace sparrow {

namespace {
thread_local bool g_grad_enabled = true;

void accumulate_into_leaf(TensorImpl& leaf, const Tensor& g) {
  SPARROW_CHECK(g.shape() == leaf.shape, "backward: gradient of shape ", shape_str(g.shape()),
                " for a leaf of shape ", shape_str(leaf.shape));
  Tensor gl = g.dtype() == leaf.dtype ? g : g.to(leaf.dtype);
  if (!leaf.grad) {
    // Own the buffer: the incoming gradient may alias another tensor's storage.
    leaf.grad = gl.clone().impl_ptr();
  } else {
    Tensor acc(leaf.grad);
    add_(acc, gl);
  }
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }
EnableGradGuard::EnableGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = true; }
EnableGradGuard::~EnableGradGuard() { g_grad_enabled = prev_; }

std::vector<Tensor> FunctionNode::backward(const Tensor& g) {
  SPARROW_CHECK(fn_, "backward through ", name_, " a second time: its saved tensors were already freed");
  return fn_(g);
}

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(Tensor out, std::shared_ptr<Node> node, const std::vector<Tensor>& inputs) {
  if (!needs_grad(inputs)) return out;
  node->next.clear();
  for (const Tensor& t : inputs) {
    Edge e;
    if (t.defined() && t.requires_grad()) {
      if (t.grad_fn())
        e.fn = t.grad_fn();
      else
        e.leaf = t.impl_ptr();
    }
    node->next.push_back(std::move(e));
  }
  out.impl().requires_grad = true;
  out.impl().grad_fn = std::move(node);
  return out;
}

Tensor record(Tensor out, const char* name, const std::vector<Tensor>& inputs, FunctionNode::Backward fn) {
  if (!needs_grad(inputs)) return out;
  return record(std::move(out), std::make_shared<FunctionNode>(name, std::move(fn)), inputs);
}

void run_backward(const Tensor& root, const Tensor& grad_output) {
  SPARROW_CHECK(root.requires_grad(), "backward: the tensor does not require grad (no recorded op made it)");
  NoGradGuard no_grad;  // gradients are not themselves recorded
  if (root.is_leaf()) {
    accumulate_into_leaf(root.impl(), grad_output);
    return;
  }
  // Iterative DFS post-order gives a topological order (inputs before consumers).
  std::vector<Node*> order;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<Node*, size_t>> stack{{root.grad_fn().get(), 0}};
  seen.insert(root.grad_fn().get());
  while (!stack.empty()) {
    auto& [n, i] = stack.back();
    if (i < n->next.size()) {
      Node* child = n->next[i++].fn.get();
      if (child && seen.insert(child).second) stack.push_back({child, 0});
    } else {
      order.push_back(n);
      stack.pop_back();
    }
  }
  std::unordered_map<Node*, Tensor> pending;
  pending[root.grad_fn().get()] = grad_output;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* n = *it;
    auto p = pending.find(n);
    if (p == pending.end()) continue;
    Tensor g = std::move(p->second);
    pending.erase(p);
    std::vector<Tensor> grads = n->backward(g);
    n->release();
    SPARROW_CHECK(grads.size() == n->next.size(), "backward of ", n->name(), " returned ", grads.size(),
                  " gradients for ", n->next.size(), " inputs");
    for (size_t k = 0; k < grads.size(); ++k) {
      const Edge& e = n->next[k];
      if (!e.active() || !grads[k].defined()) continue;
      if (e.fn) {
        auto q = pending.find(e.fn.get());
        if (q == pending.end())
          pending.emplace(e.fn.get(), grads[k]);
        else
          q->second = add(q->second, grads[k]);
      } else {
        accumulate_into_leaf(*e.leaf, grads[k]);
      }
    }
  }
}

}  // namespace sparrow
