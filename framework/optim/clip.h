// Global-norm gradient clipping: ‖g‖ = √(Σ over every gradient element g²); when ‖g‖ >
// max_norm, every gradient is scaled by max_norm / (‖g‖ + 1e-6) (torch's clip_grad_norm_).
// Returns ‖g‖ before clipping. A non-finite norm is returned unscaled: the caller skips the step.
#pragma once
#include <vector>

#include "framework/nn/parameter_buffer.h"

namespace sparrow::optim {

// The norm of one (flat or any-shaped) gradient tensor, accumulated in double on the CPU.
double grad_norm(const Tensor& g);
// ‖g‖ of a contiguous f32 gradient (e.g. the flat buffer) into `norm`, a one-element f32 tensor
// on g's device, without the host waiting: a step that must not synchronise (a captured CUDA
// graph) hands it to AdamW's guard, which clips and skips on the device (optim/adamw.h).
void grad_norm_to(const Tensor& g, Tensor& norm);

// Over a packed model: one reduction and one scale over the flat gradient buffer.
double clip_grad_norm(nn::ParameterBuffer& params, double max_norm);
// Over separate gradient tensors (e.g. an unpacked model's grads).
double clip_grad_norm(std::vector<Tensor> grads, double max_norm);

}  // namespace sparrow::optim
