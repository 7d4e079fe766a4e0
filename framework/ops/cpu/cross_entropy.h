// CPU kernels of the fused softmax cross-entropy. logits [N, V] and targets I32 [N] contiguous;
// loss (a scalar) and lse ([N]) are in the stats dtype (f64 for f64 logits, else f32).
#pragma once
#include <cstdint>

#include "framework/core/tensor.h"

namespace sparrow::cpu {

// Writes the mean loss over non-ignored targets (0 when there are none) and each row's
// logsumexp; returns how many targets counted. Throws on a target outside [0, V) that is not
// ignore_index, naming it.
int64_t cross_entropy_forward(const Tensor& logits, const Tensor& targets, int32_t ignore_index, Tensor& loss,
                              Tensor& lse);
// dlogits = g · (softmax(logits) − onehot(target)) / count; zero rows for ignored targets.
// g: the loss's gradient, a scalar in the stats dtype.
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int32_t ignore_index, const Tensor& lse,
                            const Tensor& g, int64_t count, Tensor& dlogits);

}  // namespace sparrow::cpu
