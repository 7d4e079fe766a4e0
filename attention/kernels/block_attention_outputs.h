// What the device kernels of block_attention hand back (kernels/cpu and kernels/cuda share it).
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::attn {

struct BlockAttentionForward {
  Tensor out;  // O [B, H, Nq, D]: q's dtype, except bf16 on the CPU, which keeps it in f32
  Tensor lse;  // [B, H, Nq]: m + log l per query row (−inf where the row sees nothing); f32 (f64 for f64)
};

struct BlockAttentionGrads {
  Tensor dq, dk, dv;  // q/k/v's shapes and dtype
};

}  // namespace sparrow::attn
