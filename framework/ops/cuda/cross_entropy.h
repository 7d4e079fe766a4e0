// CUDA kernels of the fused softmax cross-entropy (the contract of ops/cpu/cross_entropy.h, except
// that a bad target is reported by cross_entropy_reduce, not by cross_entropy_rows).
// One block per row over the vocabulary. The count of valid targets stays on the device for the
// backward; a bad target is checked through cuda::check_on_host (a synchronising 8-byte read, or
// deferred to the graph inside a CUDA-graph capture).
#pragma once
#include <cstdint>

#include "framework/core/tensor.h"

namespace sparrow::cuda {

void cross_entropy_rows(const Tensor& logits, const Tensor& targets, int32_t ignore_index, Tensor& lse,
                        Tensor& row_loss);
void cross_entropy_reduce(const Tensor& row_loss, const Tensor& targets, int32_t ignore_index, int64_t V, Tensor& loss,
                          Tensor& count);
void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int32_t ignore_index, const Tensor& lse,
                            const Tensor& g, const Tensor& count, Tensor& dlogits);

}  // namespace sparrow::cuda
