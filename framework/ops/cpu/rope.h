// CPU kernel of the rotary position embedding on x [B, H, N, D] (contiguous, D even).
#pragma once
#include <cstdint>

#include "framework/core/tensor.h"

namespace sparrow::cpu {

// Rotates each pair (x[2i], x[2i+1]) of position n by +θ (inverse: −θ, the backward),
// θ = (position_offset + n) · base^(−2i/D).
void rope_apply(const Tensor& in, Tensor& out, int64_t position_offset, double base, bool inverse);

// The attention input in one pass: qkv [B, T, 3, H, D] (contiguous) → heads [3, B, H, T, D] with
// q (s = 0) and k (s = 1) rotated at positions position_offset + t, v (s = 2) copied. Backward
// (to_heads = false): the gradient of heads → the gradient of qkv, q and k rotated back.
void rope_heads(const Tensor& in, Tensor& out, int64_t heads, int64_t position_offset, double base, bool to_heads);

}  // namespace sparrow::cpu
