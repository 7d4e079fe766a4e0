// Define-by-run reverse-mode autograd. Every recorded op attaches one Node to its output. A Node
// knows, for each differentiable input, where that input's gradient goes next (an Edge: the
// input's own grad_fn, or the leaf it accumulates into), and how to turn the output's gradient
// into the inputs' gradients (backward).
//
// Ownership: a Node holds its inputs' Nodes (not their data), so activations are freed as soon as
// no backward needs them; the tensors a backward needs are captured explicitly. Never capture the
// op's own output in its Node (a cycle): capture `out.detach()` instead, which shares storage.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "framework/core/tensor.h"

namespace sparrow {

struct Edge {
  std::shared_ptr<Node> fn;          // the input's grad_fn (non-leaf input)
  std::shared_ptr<TensorImpl> leaf;  // the leaf input that accumulates (requires_grad leaf)
  bool active() const { return fn || leaf; }
};

// Where a slice-like node puts its gradient: the output gradient is the input's gradient inside
// the window [start, start + size) of dim `dim`, zero elsewhere.
struct GradWindow {
  Shape in_shape;
  int64_t dim = 0;
  int64_t start = 0;
};

class Node {
 public:
  virtual ~Node() = default;
  // Non-null for slice-like nodes. The engine then adds the gradient straight into the window of
  // one full-size buffer it owns for the input, instead of calling backward (which makes a zero
  // tensor of the input's shape per slice, then sums them): q, k, v sliced from one projection
  // cost one buffer instead of three plus two full-size adds.
  virtual const GradWindow* grad_window() const { return nullptr; }
  // One gradient per input, in input order; an undefined Tensor where an input gets none.
  virtual std::vector<Tensor> backward(const Tensor& grad_output) = 0;
  // True for nodes that fold addends: the engine then calls backward_adding with, for each input,
  // the gradient that already reached that input from its other consumers (undefined where none),
  // and the node returns that input's gradient with the addend included, computed in the same pass
  // over memory. layer_norm does this for the residual stream: x feeds both the norm and the skip
  // add, and the skip's gradient, folded into the norm's dx, costs one more read instead of a
  // separate add (two reads and a write of [tokens, d]).
  virtual bool folds_addends() const { return false; }
  // grads[k] = this node's gradient for input k + addends[k] where addends[k] is defined: either
  // addends[k] itself (the node adds nothing) or a buffer the node made that nothing else refers to
  // (the engine may add later contributions into it).
  virtual std::vector<Tensor> backward_adding(const Tensor& grad_output, const std::vector<Tensor>& addends);
  // Frees what backward captured (called after backward runs once).
  virtual void release() {}
  virtual const char* name() const = 0;
  std::vector<Edge> next;
};

// A Node whose backward is a closure: the common way to record an op.
class FunctionNode : public Node {
 public:
  using Backward = std::function<std::vector<Tensor>(const Tensor& grad_output)>;
  FunctionNode(const char* name, Backward fn) : name_(name), fn_(std::move(fn)) {}
  std::vector<Tensor> backward(const Tensor& g) override;
  void release() override { fn_ = nullptr; }
  const char* name() const override { return name_; }

 private:
  const char* name_;
  Backward fn_;
};

// A Node whose backward is a closure that folds addends (Node::backward_adding); `addends` is empty
// when called as plain backward.
class AddingNode : public Node {
 public:
  using Backward = std::function<std::vector<Tensor>(const Tensor& grad_output, const std::vector<Tensor>& addends)>;
  AddingNode(const char* name, Backward fn) : name_(name), fn_(std::move(fn)) {}
  std::vector<Tensor> backward(const Tensor& g) override { return backward_adding(g, {}); }
  bool folds_addends() const override { return true; }
  std::vector<Tensor> backward_adding(const Tensor& g, const std::vector<Tensor>& addends) override;
  void release() override { fn_ = nullptr; }
  const char* name() const override { return name_; }

 private:
  const char* name_;
  Backward fn_;
};

// A FunctionNode that also declares its GradWindow (its backward stays the general fallback).
class WindowNode : public FunctionNode {
 public:
  WindowNode(const char* name, GradWindow w, Backward fn) : FunctionNode(name, std::move(fn)), w_(std::move(w)) {}
  const GradWindow* grad_window() const override { return &w_; }

 private:
  GradWindow w_;
};

// Grad mode: recording happens only while enabled (per thread).
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// Turns recording on inside a backward (which otherwise runs with grad off), e.g. to recompute a
// checkpointed segment.
class EnableGradGuard {
 public:
  EnableGradGuard();
  ~EnableGradGuard();
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool prev_;
};

// True when recording is on and some input requires a gradient.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Records `out` as produced by `node` from `inputs` (when needs_grad), and returns out.
Tensor record(Tensor out, std::shared_ptr<Node> node, const std::vector<Tensor>& inputs);
// The usual form: record(out, "op", {a, b}, [=](const Tensor& g) { return {ga, gb}; }).
Tensor record(Tensor out, const char* name, const std::vector<Tensor>& inputs, FunctionNode::Backward fn);

// The same for a node that folds addends: record(y, "op", {x, w}, [=](const Tensor& g, const std::vector<Tensor>& add)
// {…}).
Tensor record(Tensor out, const char* name, const std::vector<Tensor>& inputs, AddingNode::Backward fn);

// Runs backward from root with the given output gradient (engine.cpp).
void run_backward(const Tensor& root, const Tensor& grad_output);

// Gradient-ready notifications, for exchanging gradients while the backward still runs (data
// parallelism: dist/gradient_buckets.h). While a guard is alive on this thread, the outermost
// backward calls `ready(leaf)` once per leaf it reaches, as soon as every edge of the graph into
// that leaf has been processed (its gradient is then final for this backward), and at the end for
// leaves whose edges were never reached. Leaves reached only inside recomputed segments (nested
// backwards, activation checkpointing) are reported when their segment's backward is done with
// them; a leaf that receives gradient after being reported (a parameter shared by two segments,
// or by a segment and the outer graph) stops the backward with an error, never a partial report.
class LeafReadyGuard {
 public:
  using Ready = std::function<void(const TensorImpl* leaf)>;
  explicit LeafReadyGuard(Ready ready);
  ~LeafReadyGuard();
  LeafReadyGuard(const LeafReadyGuard&) = delete;
  LeafReadyGuard& operator=(const LeafReadyGuard&) = delete;

 private:
  Ready prev_;
};

}  // namespace sparrow
