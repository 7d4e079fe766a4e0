// CPU kernel of dropout's mask-and-scale. The mask is a pure function of (seed, first, i), so the
// backward regenerates it instead of storing it, and the CUDA kernel draws the same one.
#pragma once
#include <cstdint>

#include "framework/core/tensor.h"

namespace sparrow::cpu {

// out[i] = in[i] · scale when Philox(seed, first + i/4)[i%4] ≥ threshold, else 0.
// in and out contiguous, same shape and dtype.
void dropout_apply(const Tensor& in, Tensor& out, uint64_t seed, uint64_t first, uint32_t threshold, double scale);

}  // namespace sparrow::cpu
