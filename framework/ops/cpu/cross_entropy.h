// CPU kernels of the fused softmax cross-entropy. logits [N, V] and targets I32 [N] contiguous;
// loss (a scalar) and lse ([N]) are in the stats dtype (f64 for f64 logits, else f32).
#pragma once
#include <cstdint>

#include "framework/core/tensor.h"

namespace sparrow::cpu {

// Writes the mean loss over non-ignored targets (0 when there are none), each row's logsumexp
// and how many targets counted (count: I32 [1] on the logits' device, read by the backward, so a
// GPU step never brings it to the host). Throws on a target outside [0, V) that is not
// ignore_index, naming it.
void cross_entropy_forward(const Tensor& logits, const Tensor& targets, int32_t ignore_index, Tensor& loss, Tensor& lse,
                           Tensor& count);
// dlogits = g · (softmax(logits) − onehot(target)) / count; zero rows for ignored targets.
// g: the loss's gradient, a scalar in the stats dtype.
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int32_t ignore_index, const Tensor& lse,
                            const Tensor& g, const Tensor& count, Tensor& dlogits);

}  // namespace sparrow::cpu
