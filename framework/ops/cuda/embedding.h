// CUDA embedding kernels: id range check, row gather (forward), row scatter-add (backward).
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::cuda {

// Flat position of the first id outside [0, v) in contiguous I32 ids, or -1 (synchronises).
int64_t embedding_first_bad_id(const Tensor& ids, int64_t v);
// out[i, :] = weight[ids[i], :]; weight [V, D], out [n, D] contiguous, ids checked.
void embedding_forward(const Tensor& weight, const Tensor& ids, Tensor& out);
// grad_weight[ids[i], :] += grad_out[i, :] with f32 atomics (f64 for f64; bf16 accumulates in
// an f32 buffer, then rounds once). grad_weight is zero on entry.
void embedding_backward(const Tensor& grad_out, const Tensor& ids, Tensor& grad_weight);

}  // namespace sparrow::cuda
