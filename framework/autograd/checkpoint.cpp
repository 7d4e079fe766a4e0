#include "framework/autograd/checkpoint.h"

#include "framework/autograd/node.h"
#include "framework/ops/ops.h"

namespace sparrow {

namespace {
// Makes `out` the output of a recompute node whose backward is `replay` (g → the input's gradient):
// the node's only recorded input is `input`; parameters inside the segment receive their
// gradients from the replay's own backward. The node must exist even when `input` needs no
// gradient (the parameters still do), so it is attached by hand — to a tensor of its own: a
// segment may hand back its input (an identity, or one chunk spanning every position, which is
// the saved input itself), and setting the node on that would rewire the caller's tensor or
// close a cycle through the saved input the replay holds.
void attach_replay(Tensor& out, const Tensor& input, const char* name, std::function<Tensor(const Tensor&)> replay) {
  out = out.detach();
  auto node = std::make_shared<FunctionNode>(
      name, [replay = std::move(replay)](const Tensor& g) { return std::vector<Tensor>{replay(g)}; });
  Edge e;
  if (input.requires_grad()) {
    if (input.grad_fn())
      e.fn = input.grad_fn();
    else
      e.leaf = input.impl_ptr();
  }
  node->next.push_back(e);
  out.impl().requires_grad = true;
  out.impl().grad_fn = node;
}
}  // namespace

Tensor checkpoint(const std::function<Tensor(const Tensor&)>& segment, const Tensor& input,
                  const std::function<void()>& before_replay, const std::function<void()>& after_replay) {
  if (!grad_enabled()) return segment(input);
  Tensor out;
  {
    NoGradGuard no_grad;
    out = segment(input);
  }
  Tensor saved = input.detach();
  const bool input_needs_grad = input.requires_grad();
  attach_replay(out, input, "checkpoint", [=](const Tensor& g) {
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
    return input_needs_grad ? x.grad() : Tensor();
  });
  return out;
}

Tensor checkpoint_chunks(const std::function<Tensor(const Tensor&, int64_t)>& segment, const Tensor& input, int64_t dim,
                         int64_t chunk, int64_t out_dim, Generator* gen) {
  SPARROW_CHECK(chunk > 0, "checkpoint_chunks: chunk must be > 0, got ", chunk);
  SPARROW_CHECK(dim >= 0 && dim < input.dim(), "checkpoint_chunks: dim ", dim, " out of range for ", describe(input));
  const int64_t n = input.size(dim);
  std::vector<int64_t> firsts;
  for (int64_t t = 0; t < n; t += chunk) firsts.push_back(t);
  auto last = [n, chunk](int64_t first) { return std::min(n, first + chunk); };
  const bool record = grad_enabled();
  const Tensor saved = input.detach();
  std::vector<uint64_t> draws_at;  // the generator's offset as each chunk's first run began
  Tensor out;
  {
    NoGradGuard no_grad;
    std::vector<Tensor> parts;
    for (int64_t first : firsts) {
      if (gen != nullptr) draws_at.push_back(gen->offset());
      parts.push_back(segment(slice(saved, dim, first, last(first)), first));
    }
    out = parts.size() == 1 ? parts[0] : concat(parts, out_dim);
  }
  if (!record) return out;
  const bool input_needs_grad = input.requires_grad();
  attach_replay(out, input, "checkpoint_chunks", [=](const Tensor& g) {
    const uint64_t seed = gen != nullptr ? gen->seed() : 0, resume_at = gen != nullptr ? gen->offset() : 0;
    Tensor dx = input_needs_grad ? empty(saved.shape(), saved.dtype(), saved.device()) : Tensor();
    for (size_t c = 0; c < firsts.size(); ++c) {
      const int64_t first = firsts[c], end = last(first);
      if (gen != nullptr) gen->set_state(seed, draws_at[c]);
      Tensor x = slice(saved, dim, first, end).detach();
      if (input_needs_grad) x.requires_grad_(true);
      Tensor y;
      {
        EnableGradGuard with_grad;
        y = segment(x, first);
      }
      if (y.requires_grad()) y.backward(slice(g, out_dim, first, end).contiguous());
      if (input_needs_grad) {
        Tensor window = slice(dx, dim, first, end);
        copy_(window, x.grad().defined() ? x.grad() : zeros(x.shape(), x.dtype(), x.device()));
      }
    }
    if (gen != nullptr) gen->set_state(seed, resume_at);
    return dx;
  });
  return out;
}

}  // namespace sparrow
