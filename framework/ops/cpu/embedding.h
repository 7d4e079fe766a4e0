// CPU embedding kernels: id range check, row gather (forward), row scatter-add (backward).
#pragma once
#include <functional>
#include <string>

#include "framework/core/tensor.h"

namespace sparrow::cpu {

// Throws message(position, id) for the first id outside [0, v) in contiguous I32 ids.
void embedding_check_ids(const Tensor& ids, int64_t v, std::function<std::string(int64_t, int64_t)> message);
// out[i, :] = weight[ids[i], :]. weight [V, D] and out [n, D] contiguous, ids contiguous I32 of n
// elements already checked to lie in [0, V).
void embedding_forward(const Tensor& weight, const Tensor& ids, Tensor& out);
// grad_weight[ids[i], :] += grad_out[i, :]; grad_weight [V, D] zero-initialised, grad_out [n, D]
// contiguous, same dtype. Repeated ids accumulate.
void embedding_backward(const Tensor& grad_out, const Tensor& ids, Tensor& grad_weight);

}  // namespace sparrow::cpu
