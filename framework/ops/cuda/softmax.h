// CUDA kernels of softmax and log_softmax over one dim (same contract as ops/cpu/softmax.h).
// Last dim: one block per row. Other dims: one thread per line, neighbouring threads on
// neighbouring (coalesced) columns.
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::cuda {

void softmax_forward(bool log, const Tensor& x, int64_t dim, Tensor& y);
void softmax_backward(bool log, const Tensor& dy, const Tensor& y, int64_t dim, Tensor& dx);

}  // namespace sparrow::cuda
