// CUDA embedding kernels: id range check, row gather (forward), row scatter-add (backward).
#pragma once
#include <functional>
#include <string>

#include "framework/core/tensor.h"

namespace sparrow::cuda {

// Throws message(position, id) for the first id outside [0, v) in contiguous I32 ids. Waits for
// the device; inside a CUDA-graph capture the check is deferred to the graph (cuda/graph.h).
void embedding_check_ids(const Tensor& ids, int64_t v, std::function<std::string(int64_t, int64_t)> message);
// out[i, :] = weight[ids[i], :]; weight [V, D], out [n, D] contiguous. A bad id (possible only
// when the check was deferred) gives a zero row instead of reading outside the weight.
void embedding_forward(const Tensor& weight, const Tensor& ids, Tensor& out);
// grad_weight[ids[i], :] += grad_out[i, :] (bad ids skipped) with f32 atomics (f64 for f64; bf16 accumulates in
// an f32 buffer, then rounds once). grad_weight is zero on entry.
void embedding_backward(const Tensor& grad_out, const Tensor& ids, Tensor& grad_weight);

}  // namespace sparrow::cuda
