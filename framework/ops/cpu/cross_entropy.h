// CPU kernels of the fused softmax cross-entropy. logits [N, V] and targets I32 [N] contiguous;
// loss (a scalar) and lse ([N]) are in the stats dtype (f64 for f64 logits, else f32).
#pragma once
#include <cstdint>

#include "framework/core/tensor.h"

namespace sparrow::cpu {

// The forward in two steps, so that rows may come in chunks (linear_cross_entropy):
// cross_entropy_rows writes each row's logsumexp and loss (lse − x[target]; 0 for an ignored
// target) and throws on a target outside [0, V) that is not ignore_index, naming it;
// cross_entropy_reduce then writes the mean of the rows' losses over counted targets (0 when there
// are none; a fixed-order sum, the same whatever the thread count) and how many counted (count:
// I32 [1] on the device, read by the backward, so a GPU step never brings it to the host).
void cross_entropy_rows(const Tensor& logits, const Tensor& targets, int32_t ignore_index, Tensor& lse,
                        Tensor& row_loss);
void cross_entropy_reduce(const Tensor& row_loss, const Tensor& targets, int32_t ignore_index, int64_t V, Tensor& loss,
                          Tensor& count);
// dlogits = g · (softmax(logits) − onehot(target)) / count; zero rows for ignored targets.
// g: the loss's gradient, a scalar in the stats dtype.
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int32_t ignore_index, const Tensor& lse,
                            const Tensor& g, const Tensor& count, Tensor& dlogits);

}  // namespace sparrow::cpu
