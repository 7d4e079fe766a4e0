// CUDA kernel of dropout's mask-and-scale; draws the same Philox mask as ops/cpu/dropout.cpp.
#pragma once
#include <cstdint>

#include "framework/core/tensor.h"

namespace sparrow::cuda {

void dropout_apply(const Tensor& in, Tensor& out, uint64_t seed, uint64_t first, uint32_t threshold, double scale);

}  // namespace sparrow::cuda
