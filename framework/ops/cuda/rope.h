// CUDA kernel of the rotary position embedding on x [B, H, N, D] (same contract as
// ops/cpu/rope.h).
#pragma once
#include <cstdint>

#include "framework/core/tensor.h"

namespace sparrow::cuda {

void rope_apply(const Tensor& in, Tensor& out, int64_t position_offset, double base, bool inverse);

// The attention input in one pass: qkv [B, T, 3, H, D] (contiguous) → heads [3, B, H, T, D] with
// q (s = 0) and k (s = 1) rotated at positions position_offset + t, v (s = 2) copied. Backward
// (to_heads = false): the gradient of heads → the gradient of qkv, q and k rotated back.
void rope_heads(const Tensor& in, Tensor& out, int64_t heads, int64_t position_offset, double base, bool to_heads);

}  // namespace sparrow::cuda
