#include "framework/autograd/checkpoint.h"

#include "framework/autograd/node.h"

namespace sparrow {

Tensor checkpoint(const std::function<Tensor(const Tensor&)>& segment, const Tensor& input,
                  const std::function<void()>& before_replay, const std::function<void()>& after_replay) {
  if (!grad_enabled()) return segment(input);
  Tensor out;
  {
    NoGradGuard no_grad;
    out = segment(input);
  }
  // The node's only recorded input is `input`; parameters inside the segment receive their
  // gradients from the inner backward below. The node must exist even when `input` needs no
  // gradient (the parameters still do), so it is attached by hand.
  Tensor saved = input.detach();
  bool input_needs_grad = input.requires_grad();
  auto node = std::make_shared<FunctionNode>("checkpoint", [=](const Tensor& g) {
    if (before_replay) before_replay();
    Tensor x = saved.detach();
    if (input_needs_grad) x.requires_grad_(true);
    Tensor y;
    {
      EnableGradGuard with_grad;
      y = segment(x);
    }
    if (after_replay) after_replay();
    if (y.requires_grad()) y.backward(g);
    return std::vector<Tensor>{input_needs_grad ? x.grad() : Tensor()};
  });
  Edge e;
  if (input_needs_grad) {
    if (input.grad_fn())
      e.fn = input.grad_fn();
    else
      e.leaf = input.impl_ptr();
  }
  node->next.push_back(e);
  out.impl().requires_grad = true;
  out.impl().grad_fn = node;
  return out;
}

}  // namespace sparrow
