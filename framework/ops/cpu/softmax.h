// CPU kernels of softmax and log_softmax over one dim. x, y, dy, dx are contiguous and of one
// shape; the dim splits it into [outer, D, inner] (inner == 1 is the last-dim fast path).
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::cpu {

// log: log_softmax, else softmax.
void softmax_forward(bool log, const Tensor& x, int64_t dim, Tensor& y);
// y is the forward's output (softmax or log_softmax, per `log`).
void softmax_backward(bool log, const Tensor& dy, const Tensor& y, int64_t dim, Tensor& dx);

}  // namespace sparrow::cpu
