// The scalars of one AdamW step, shared by the CPU and CUDA kernels (plain data, no CUDA types).
// Per element i of the flat buffer (PyTorch's AdamW, decoupled weight decay):
//   g ← g·c                        c = clip factor, 1 unless the guard clips (below)
//   p ← p·(1 − lr·wd_i)            wd_i = weight_decay for i < decay_end, else 0
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + (1 − β2)·g²
//   p ← p − step_size · m / (√v · inv_sqrt_bc2 + eps)
// with bias corrections bc1 = 1 − β1^t, bc2 = 1 − β2^t folded in on the host:
//   step_size = lr / bc1,  inv_sqrt_bc2 = 1/√bc2   (so m/bc1 and √(v/bc2) are never formed).
//
// The guard (optional) fuses two decisions the trainer used to take on the host into the update,
// so a GPU step never waits for them: given the step's loss and gradient norm ‖g‖ (f32 scalars the
// step itself wrote), the update is skipped when either is non-finite, and when max_norm > 0 and
// ‖g‖ > max_norm the gradients are clipped by c = max_norm / (‖g‖ + 1e-6) (torch's
// clip_grad_norm_), without rewriting the gradient buffer.
#pragma once
#include <cstdint>

namespace sparrow::optim {

// What changes from step to step. Kernels read it from memory (on the GPU: device memory filled
// from pinned host memory by a copy on the stream), not from kernel arguments, which a captured
// CUDA graph would freeze.
struct AdamWStepScalars {
  float lr, step_size, inv_sqrt_bc2;
  float max_norm;  // > 0: clip by the guard's norm
};

struct AdamWKernelArgs {
  float beta1, beta2, eps, weight_decay;
  int64_t n;          // elements in the flat buffers
  int64_t decay_end;  // [0, decay_end) takes weight decay
  const AdamWStepScalars* s;
  const float* loss = nullptr;  // the guard: both null, or both set (same memory space as s)
  const float* norm = nullptr;
};

// The clip factor c, or a negative value when the guard skips the step. Host and device code.
#if defined(__CUDACC__)
__host__ __device__
#endif
    inline float
    adamw_guard_factor(const AdamWKernelArgs& a, const AdamWStepScalars& s) {
  if (!a.norm) return 1.0f;
  const float loss = *a.loss, norm = *a.norm;
  // x − x is 0 for finite x and NaN for ±inf or NaN (no <cmath> needed on the device).
  if (!(loss - loss == 0.0f) || !(norm - norm == 0.0f)) return -1.0f;
  if (s.max_norm > 0.0f && norm > s.max_norm)
    return static_cast<float>(static_cast<double>(s.max_norm) / (static_cast<double>(norm) + 1e-6));
  return 1.0f;
}

}  // namespace sparrow::optim
