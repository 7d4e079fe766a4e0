// The backward engine: a topological order of the Nodes reachable from the root, then one pass in
// reverse, summing the gradients that reach each Node from several consumers before calling it.
#include <array>
#include <unordered_map>
#include <unordered_set>

#include "framework/autograd/node.h"
#include "framework/core/profile.h"
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
  // The gradient waiting at each node. `owned`: the engine made this buffer (a sum, or a
  // window buffer) and nothing else refers to it, so later contributions may be added in place.
  struct Pending {
    Tensor g;
    bool owned = false;
    // For a buffer that started as zeros: the windows written so far (dim, start, end). A window
    // along the same dim that overlaps none of them still holds zeros, so it is copied into
    // rather than added to (q, k, v: three copies, no reads of the buffer).
    std::vector<std::array<int64_t, 3>> zero_windows;
    bool from_zeros = false;
  };
  std::unordered_map<Node*, Pending> pending;
  pending[root.grad_fn().get()] = Pending{grad_output, false, {}, false};
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* n = *it;
    auto p = pending.find(n);
    if (p == pending.end()) continue;
    Tensor g = std::move(p->second.g);
    pending.erase(p);
    const GradWindow* w = n->grad_window();
    if (w && n->next.size() == 1 && n->next[0].fn) {
      // A slice of a non-leaf: add g into the window of the input's owned gradient buffer.
      profile::Scope scope(n->name(), "bwd");
      Pending& slot = pending[n->next[0].fn.get()];
      if (!slot.owned) {
        // A private buffer: zeros, or a copy of what already arrived (which may be shared).
        const bool fresh = !slot.g.defined();
        slot.g = fresh ? zeros(w->in_shape, g.dtype(), g.device()) : slot.g.clone();
        slot.owned = true;
        slot.from_zeros = fresh;
      }
      const Shape st = slot.g.strides();
      const int64_t end = w->start + g.shape()[size_t(w->dim)];
      Tensor window = make_view(slot.g, g.shape(), st, slot.g.offset() + w->start * st[size_t(w->dim)]);
      bool untouched = slot.from_zeros;
      for (const auto& z : slot.zero_windows)
        untouched = untouched && z[0] == w->dim && (end <= z[1] || z[2] <= w->start);
      if (untouched)
        copy_(window, g);
      else
        add_(window, g);
      if (slot.from_zeros) slot.zero_windows.push_back({w->dim, w->start, end});
      n->release();
      continue;
    }
    std::vector<Tensor> grads;
    {
      profile::Scope scope(n->name(), "bwd");
      grads = n->backward(g);
      n->release();  // frees the saved activations: part of the node's cost
    }
    SPARROW_CHECK(grads.size() == n->next.size(), "backward of ", n->name(), " returned ", grads.size(),
                  " gradients for ", n->next.size(), " inputs");
    for (size_t k = 0; k < grads.size(); ++k) {
      const Edge& e = n->next[k];
      if (!e.active() || !grads[k].defined()) continue;
      if (e.fn) {
        auto q = pending.find(e.fn.get());
        if (q == pending.end()) {
          pending.emplace(e.fn.get(), Pending{grads[k], false, {}, false});
        } else if (q->second.owned && q->second.g.shape() == grads[k].shape() && q->second.g.dtype() == grads[k].dtype()) {
          add_(q->second.g, grads[k]);
          q->second.from_zeros = false;  // no longer zero outside the windows
        } else {
          q->second = Pending{add(q->second.g, grads[k]), true, {}, false};
        }
      } else {
        accumulate_into_leaf(*e.leaf, grads[k]);
      }
    }
  }
}

}  // namespace sparrow
