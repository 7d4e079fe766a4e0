// ‖x‖₂ of a contiguous f32 tensor into the one-element f32 tensor `norm`, on the device: the host
// does not wait (a captured step reads the norm on the device, in AdamW's guard). Each of a fixed
// number of blocks sums its grid-stride share of x² in double; one block then adds the blocks'
// sums in a fixed order, so the result is the same on every run.
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::cuda {

void grad_norm(const Tensor& x, Tensor& norm);

}  // namespace sparrow::cuda
