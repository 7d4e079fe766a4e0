// CPU kernel of the rotary position embedding on x [B, H, N, D] (contiguous, D even).
#pragma once
#include <cstdint>

#include "framework/core/tensor.h"

namespace sparrow::cpu {

// Rotates each pair (x[2i], x[2i+1]) of position n by +θ (inverse: −θ, the backward),
// θ = (position_offset + n) · base^(−2i/D).
void rope_apply(const Tensor& in, Tensor& out, int64_t position_offset, double base, bool inverse);

}  // namespace sparrow::cpu
