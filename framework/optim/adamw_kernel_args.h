// The scalars of one AdamW step, shared by the CPU and CUDA kernels (plain data, no CUDA types).
// Per element i of the flat buffer (PyTorch's AdamW, decoupled weight decay):
//   p ← p·(1 − lr·wd_i)            wd_i = weight_decay for i < decay_end, else 0
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + (1 − β2)·g²
//   p ← p − step_size · m / (√v · inv_sqrt_bc2 + eps)
// with bias corrections bc1 = 1 − β1^t, bc2 = 1 − β2^t folded in on the host:
//   step_size = lr / bc1,  inv_sqrt_bc2 = 1/√bc2   (so m/bc1 and √(v/bc2) are never formed).
#pragma once
#include <cstdint>

namespace sparrow::optim {

struct AdamWKernelArgs {
  float lr, beta1, beta2, eps, weight_decay;
  float step_size, inv_sqrt_bc2;
  int64_t n;          // elements in the flat buffers
  int64_t decay_end;  // [0, decay_end) takes weight decay
};

}  // namespace sparrow::optim
