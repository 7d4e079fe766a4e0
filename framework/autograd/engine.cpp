// The backward engine: a topological order of the Nodes reachable from the root, then one pass in
// reverse, summing the gradients that reach each Node from several consumers before calling it.
#include <algorithm>
#include <array>
#include <unordered_map>
#include <unordered_set>

#include "framework/autograd/node.h"
#include "framework/core/profile.h"
#include "framework/ops/ops.h"

namespace sparrow {

namespace {
thread_local bool g_grad_enabled = true;
thread_local LeafReadyGuard::Ready g_leaf_ready;  // empty: nobody listens
thread_local int g_backward_depth = 0;            // nested backwards (recompute) run at depth > 1

// While the outermost backward notifies: the edges into each leaf its graph has not processed yet,
// and the leaves reported so far (each once). A nested backward (a recomputed segment) reports a
// leaf when its own edges into it are done and the outer graph has none left; a leaf that then
// receives more gradient was reported too early (used in two segments, or in one and outside), and
// the backward stops with an error rather than let a listener send a partial gradient.
struct ReadyTracking {
  bool active = false;
  std::unordered_map<const TensorImpl*, int>* outer_edges = nullptr;
  std::unordered_set<const TensorImpl*> reported;
};
thread_local ReadyTracking g_ready;

void report_ready(const TensorImpl* leaf) {
  if (g_ready.reported.insert(leaf).second) g_leaf_ready(leaf);
}

void accumulate_into_leaf(TensorImpl& leaf, const Tensor& g) {
  SPARROW_CHECK(g.shape() == leaf.shape, "backward: gradient of shape ", shape_str(g.shape()), " for a leaf of shape ",
                shape_str(leaf.shape));
  SPARROW_CHECK(!g_ready.active || !g_ready.reported.count(&leaf), "backward: a parameter of shape ",
                shape_str(leaf.shape),
                " received gradient after it was reported final to the gradient-ready listener (data-parallel "
                "overlap): it is used inside a recomputed segment and also elsewhere (another segment, or outside); "
                "train with train.recompute off, or without sharing that parameter");
  if (!leaf.grad) {
    // The leaf must own its gradient buffer. A gradient nothing else refers to (no other tensor
    // object, no other view of its storage) is adopted as is; one that may alias is copied.
    const bool sole = g.impl_ptr().use_count() == 1 && g.impl().storage.use_count() == 1 && g.is_contiguous() &&
                      g.offset() == 0 && !g.requires_grad();
    if (g.dtype() != leaf.dtype)
      leaf.grad = g.to(leaf.dtype).impl_ptr();
    else
      leaf.grad = sole ? g.impl_ptr() : g.clone().impl_ptr();
    return;
  }
  Tensor acc(leaf.grad);
  // A gradient in another dtype (a bf16 compute copy's, handed on by cast) is converted as it is
  // added: one pass, no converted temporary.
  accumulate_(acc, g);
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
LeafReadyGuard::LeafReadyGuard(Ready ready) : prev_(std::move(g_leaf_ready)) { g_leaf_ready = std::move(ready); }
LeafReadyGuard::~LeafReadyGuard() { g_leaf_ready = std::move(prev_); }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }
EnableGradGuard::EnableGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = true; }
EnableGradGuard::~EnableGradGuard() { g_grad_enabled = prev_; }

std::vector<Tensor> FunctionNode::backward(const Tensor& g) {
  SPARROW_CHECK(fn_, "backward through ", name_, " a second time: its saved tensors were already freed");
  return fn_(g);
}

std::vector<Tensor> Node::backward_adding(const Tensor& g, const std::vector<Tensor>& addends) {
  std::vector<Tensor> grads = backward(g);
  for (size_t k = 0; k < addends.size() && k < grads.size(); ++k)
    if (addends[k].defined()) grads[k] = grads[k].defined() ? add(grads[k], addends[k]) : addends[k];
  return grads;
}

std::vector<Tensor> AddingNode::backward_adding(const Tensor& g, const std::vector<Tensor>& addends) {
  SPARROW_CHECK(fn_, "backward through ", name_, " a second time: its saved tensors were already freed");
  return fn_(g, addends);
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

Tensor record(Tensor out, const char* name, const std::vector<Tensor>& inputs, AddingNode::Backward fn) {
  if (!needs_grad(inputs)) return out;
  return record(std::move(out), std::make_shared<AddingNode>(name, std::move(fn)), inputs);
}

void run_backward(const Tensor& root, const Tensor& grad_output) {
  SPARROW_CHECK(root.requires_grad(), "backward: the tensor does not require grad (no recorded op made it)");
  NoGradGuard no_grad;  // gradients are not themselves recorded
  struct Depth {
    Depth() { ++g_backward_depth; }
    ~Depth() { --g_backward_depth; }
  } depth;
  const bool outermost = g_backward_depth == 1;
  const bool notify = g_leaf_ready && (outermost || g_ready.active);
  struct Tracking {  // the outermost notifying backward owns g_ready for its duration
    bool owner;
    explicit Tracking(bool o) : owner(o) {
      if (owner) g_ready = ReadyTracking{true, nullptr, {}};
    }
    ~Tracking() {
      if (owner) g_ready = ReadyTracking{};
    }
  } tracking(notify && outermost);
  if (root.is_leaf()) {
    accumulate_into_leaf(root.impl(), grad_output);
    if (notify &&
        !(g_ready.outer_edges && g_ready.outer_edges->count(&root.impl()) && g_ready.outer_edges->at(&root.impl()) > 0))
      report_ready(&root.impl());
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
  // `lazy`: a window buffer allocated without zeroing; only `windows` (disjoint ranges of one dim)
  // hold values so far, and the rest is zero-filled when anything needs the whole buffer. q, k, v
  // sliced from one tensor thus cost three copies and no fill (their windows cover it).
  // `borrowed`: g is a full-size view of a buffer another node made, whose `windows` already hold
  // the window gradients that arrived (each was a view of it at its own place: attention writes
  // dq, dk, dv into one buffer laid out as the q, k, v slices' input, empty_adjacent), so nothing
  // was copied. Never written: a window elsewhere, an overlap or a gap makes a private copy first.
  struct Pending {
    Tensor g;
    bool owned = false;
    bool lazy = false;
    bool borrowed = false;
    std::vector<std::array<int64_t, 3>> windows;  // (dim, start, end)
  };
  // The window gradient g as a window of a buffer laid out as the input (contiguous in_shape, the
  // window at its place): that buffer's full view, or an undefined tensor.
  auto home_of = [](const Tensor& g, const GradWindow& w) -> Tensor {
    const Shape st = contiguous_strides(w.in_shape);
    if (g.strides() != st) return {};
    const int64_t base = g.offset() - w.start * st[size_t(w.dim)];
    const auto bytes = [&](int64_t elements) { return static_cast<size_t>(elements) * dtype_size(g.dtype()); };
    if (base < 0 || bytes(base + shape_numel(w.in_shape)) > g.impl().storage->nbytes) return {};
    return make_view(g, w.in_shape, st, base);
  };
  // A borrowed slot becomes an owned, lazy one: its windows copied into a private buffer.
  auto unborrow = [](Pending& slot) {
    if (!slot.borrowed) return;
    Tensor mine = empty(slot.g.shape(), slot.g.dtype(), slot.g.device());
    const Shape st = slot.g.strides();
    for (const auto& w : slot.windows) {
      Shape sh = slot.g.shape();
      sh[size_t(w[0])] = w[2] - w[1];
      Tensor to = make_view(mine, sh, st, w[1] * st[size_t(w[0])]);
      copy_(to, make_view(slot.g, sh, st, slot.g.offset() + w[1] * st[size_t(w[0])]));
    }
    slot = Pending{mine, true, true, false, std::move(slot.windows)};
  };
  // Whether [start, end) of dim `dim` overlaps none of `windows` (all of that dim).
  auto disjoint_from = [](const std::vector<std::array<int64_t, 3>>& windows, int64_t dim, int64_t start, int64_t end) {
    for (const auto& z : windows)
      if (z[0] != dim || !(end <= z[1] || z[2] <= start)) return false;
    return true;
  };
  // Windows (of one dim) that cover it from 0 to `size` without a gap.
  auto covers = [](std::vector<std::array<int64_t, 3>> windows, int64_t size) {
    std::sort(windows.begin(), windows.end());
    int64_t at = 0;
    for (const auto& w : windows) {
      if (w[1] != at) return false;
      at = w[2];
    }
    return at == size;
  };
  auto materialise = [&](Pending& slot) {
    if (slot.borrowed) {
      if (covers(slot.windows, slot.g.shape()[size_t(slot.windows[0][0])])) {
        slot.borrowed = false;  // read as it is; later contributions add out of place (not owned)
        slot.windows.clear();
        return;
      }
      unborrow(slot);
    }
    if (!slot.lazy) return;
    slot.lazy = false;
    if (slot.windows.empty()) {
      fill_(slot.g, 0.0);
      return;
    }
    const int64_t dim = slot.windows[0][0];
    std::sort(slot.windows.begin(), slot.windows.end());
    const Shape st = slot.g.strides();
    auto zero = [&](int64_t from, int64_t to) {
      if (from >= to) return;
      Shape sh = slot.g.shape();
      sh[size_t(dim)] = to - from;
      Tensor gap = make_view(slot.g, sh, st, slot.g.offset() + from * st[size_t(dim)]);
      fill_(gap, 0.0);
    };
    int64_t at = 0;
    for (const auto& w : slot.windows) {
      zero(at, w[1]);
      at = w[2];
    }
    zero(at, slot.g.shape()[size_t(dim)]);
    slot.windows.clear();
  };
  // Edges into each leaf not yet processed (only when someone listens for finished leaves).
  std::unordered_map<const TensorImpl*, int> leaf_edges;
  if (notify)
    for (Node* n : order)
      for (const Edge& e : n->next)
        if (e.leaf) ++leaf_edges[e.leaf.get()];
  if (notify && outermost) g_ready.outer_edges = &leaf_edges;
  auto edge_done = [&](const TensorImpl* leaf) {
    if (!notify || --leaf_edges[leaf] != 0) return;
    if (!outermost) {  // a nested graph is done with it; the outer one may still owe gradient
      const auto o = g_ready.outer_edges->find(leaf);
      if (o != g_ready.outer_edges->end() && o->second > 0) return;
    }
    report_ready(leaf);
  };
  std::unordered_map<Node*, Pending> pending;
  pending[root.grad_fn().get()] = Pending{grad_output, false, false, false, {}};
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* n = *it;
    auto p = pending.find(n);
    if (p == pending.end()) {  // nothing reached this node: its edges deliver nothing
      if (notify)
        for (const Edge& e : n->next)
          if (e.leaf) edge_done(e.leaf.get());
      continue;
    }
    materialise(p->second);
    Tensor g = std::move(p->second.g);
    pending.erase(p);
    const GradWindow* w = n->grad_window();
    if (w && n->next.size() == 1 && n->next[0].fn) {
      // A slice of a non-leaf: its gradient goes into the window of the input's owned buffer.
      profile::Scope scope(n->name(), "bwd");
      Pending& slot = pending[n->next[0].fn.get()];
      const int64_t end = w->start + g.shape()[size_t(w->dim)];
      if (Tensor home = home_of(g, *w); home.defined()) {
        const bool fresh = !slot.g.defined();
        bool fits = fresh;
        if (slot.borrowed) {
          fits = home.impl().storage == slot.g.impl().storage && home.offset() == slot.g.offset() &&
                 home.dtype() == slot.g.dtype() && disjoint_from(slot.windows, w->dim, w->start, end);
        }
        if (fits) {
          if (fresh) slot = Pending{home, false, false, true, {}};
          slot.windows.push_back({w->dim, w->start, end});
          n->release();
          continue;
        }
      }
      unborrow(slot);
      if (!slot.owned) {
        // A private buffer: fresh (lazy), or a copy of what already arrived (which may be shared).
        const bool fresh = !slot.g.defined();
        slot.g = fresh ? empty(w->in_shape, g.dtype(), g.device()) : slot.g.clone();
        slot.owned = true;
        slot.lazy = fresh;
      }
      const bool disjoint = slot.lazy && disjoint_from(slot.windows, w->dim, w->start, end);
      if (!disjoint) materialise(slot);
      const Shape st = slot.g.strides();
      Tensor window = make_view(slot.g, g.shape(), st, slot.g.offset() + w->start * st[size_t(w->dim)]);
      if (disjoint) {
        copy_(window, g);  // nothing there yet
        slot.windows.push_back({w->dim, w->start, end});
      } else {
        add_(window, g);
      }
      n->release();
      continue;
    }
    // A node that folds addends gets, for each non-leaf input, the gradient already waiting there
    // (once per input node, however many of its edges lead there); what it returns for that input
    // then replaces the waiting gradient instead of being added to it.
    std::vector<Tensor> addends;
    if (n->folds_addends()) {
      addends.resize(n->next.size());
      for (size_t k = 0; k < n->next.size(); ++k) {
        Node* in = n->next[k].fn.get();
        if (!in ||
            std::any_of(n->next.begin(), n->next.begin() + long(k), [&](const Edge& e) { return e.fn.get() == in; }))
          continue;
        if (auto q = pending.find(in); q != pending.end()) {
          materialise(q->second);
          addends[k] = q->second.g;
        }
      }
    }
    std::vector<Tensor> grads;
    {
      profile::Scope scope(n->name(), "bwd");
      grads = addends.empty() ? n->backward(g) : n->backward_adding(g, addends);
      n->release();  // frees the saved activations: part of the node's cost
    }
    SPARROW_CHECK(grads.size() == n->next.size(), "backward of ", n->name(), " returned ", grads.size(),
                  " gradients for ", n->next.size(), " inputs");
    for (size_t k = 0; k < grads.size(); ++k) {
      const Edge& e = n->next[k];
      if (k < addends.size() && addends[k].defined()) {
        SPARROW_CHECK(grads[k].defined(), "backward of ", n->name(), " dropped the gradient added to its input ", k);
        Pending& slot = pending.at(e.fn.get());
        if (grads[k].impl_ptr() != addends[k].impl_ptr()) slot = Pending{grads[k], true, false, false, {}};
        continue;
      }
      if (!e.active() || !grads[k].defined()) {
        if (e.leaf) edge_done(e.leaf.get());
        continue;
      }
      if (e.fn) {
        auto q = pending.find(e.fn.get());
        if (q == pending.end()) {
          pending.emplace(e.fn.get(), Pending{grads[k], false, false, false, {}});
          continue;
        }
        Pending& slot = q->second;
        materialise(slot);
        if (slot.owned && slot.g.shape() == grads[k].shape() && slot.g.dtype() == grads[k].dtype())
          add_(slot.g, grads[k]);
        else
          slot = Pending{add(slot.g, grads[k]), true, false, false, {}};
      } else {
        accumulate_into_leaf(*e.leaf, grads[k]);
        edge_done(e.leaf.get());
      }
    }
  }
}

}  // namespace sparrow
