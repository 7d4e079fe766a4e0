// CUDA kernels of the fused softmax cross-entropy (same contract as ops/cpu/cross_entropy.h).
// One block per row over the vocabulary. The count of valid targets stays on the device for the
// backward; a bad target is checked through cuda::check_on_host (a synchronising 8-byte read, or
// deferred to the graph inside a CUDA-graph capture).
#pragma once
#include <cstdint>

#include "framework/core/tensor.h"

namespace sparrow::cuda {

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, int32_t ignore_index, Tensor& loss, Tensor& lse,
                           Tensor& count);
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int32_t ignore_index, const Tensor& lse,
                            const Tensor& g, const Tensor& count, Tensor& dlogits);

}  // namespace sparrow::cuda
