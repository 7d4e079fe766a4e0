// CUDA kernels of the fused softmax cross-entropy (same contract as ops/cpu/cross_entropy.h).
// One block per row over the vocabulary; the forward reads the valid-target count and any bad
// target back to the host (one small synchronising copy) so it can throw and so the backward
// knows the count.
#pragma once
#include <cstdint>

#include "framework/core/tensor.h"

namespace sparrow::cuda {

int64_t cross_entropy_forward(const Tensor& logits, const Tensor& targets, int32_t ignore_index, Tensor& loss,
                              Tensor& lse);
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int32_t ignore_index, const Tensor& lse,
                            const Tensor& g, int64_t count, Tensor& dlogits);

}  // namespace sparrow::cuda
