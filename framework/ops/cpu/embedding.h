// CPU embedding kernels: row gather (forward) and row scatter-add (backward).
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::cpu {

// Flat position of the first id outside [0, v) in contiguous I32 ids, or -1 when all are in range.
int64_t embedding_first_bad_id(const Tensor& ids, int64_t v);
// out[i, :] = weight[ids[i], :]. weight [V, D] and out [n, D] contiguous, ids contiguous I32 of n
// elements already checked to lie in [0, V).
void embedding_forward(const Tensor& weight, const Tensor& ids, Tensor& out);
// grad_weight[ids[i], :] += grad_out[i, :]; grad_weight [V, D] zero-initialised, grad_out [n, D]
// contiguous, same dtype. Repeated ids accumulate.
void embedding_backward(const Tensor& grad_out, const Tensor& ids, Tensor& grad_weight);

}  // namespace sparrow::cpu
