// The sum of a tensor over the ranks of a communicator, as a differentiable op.
//
// y = Σ_r x_r, the same on every rank. When each rank r goes on to a loss L_r of its own and the
// training loss is L = Σ_r L_r (context parallelism: every rank's loss covers its own tokens),
// the gradient reaching x_r is ∂L/∂x_r = Σ_r' ∂L_r'/∂y: the backward is the same all-reduce of
// the incoming gradients. Both are collectives: every rank of `comm` calls the forward, and its
// backward runs in every rank's backward, in the same order relative to the other collectives on
// `comm` (it does when every rank runs the same graph, as context-parallel ranks do).
#pragma once
#include "framework/core/tensor.h"
#include "framework/dist/communicator.h"

namespace sparrow::dist {

// x: any shape, contiguous or not; the result is a new contiguous tensor recorded for autograd.
Tensor sum_over_ranks(const Tensor& x, Communicator& comm);

}  // namespace sparrow::dist
