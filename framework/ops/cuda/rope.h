// CUDA kernel of the rotary position embedding on x [B, H, N, D] (same contract as
// ops/cpu/rope.h).
#pragma once
#include <cstdint>

#include "framework/core/tensor.h"

namespace sparrow::cuda {

void rope_apply(const Tensor& in, Tensor& out, int64_t position_offset, double base, bool inverse);

}  // namespace sparrow::cuda
