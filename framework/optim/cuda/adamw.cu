#include <cuda_bf16.h>

#include "framework/cuda/runtime.h"
#include "framework/optim/cuda/adamw.h"

namespace sparrow::cuda {

namespace {
// Memory-bound: 4 fp32 reads, 3 fp32 writes (+1 bf16) per element; coalesced grid-stride loop.
__global__ void adamw_kernel(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                             float* __restrict__ v, __nv_bfloat16* __restrict__ copy, optim::AdamWKernelArgs a) {
  const optim::AdamWStepScalars s = *a.s;
  const float clip = optim::adamw_guard_factor(a, s);
  if (clip < 0) return;  // the guard skips this step
  const float decay = 1.0f - s.lr * a.weight_decay;
  const float c1 = 1.0f - a.beta1, c2 = 1.0f - a.beta2;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += stride) {
    float pi = i < a.decay_end ? p[i] * decay : p[i];
    const float gi = clip == 1.0f ? g[i] : g[i] * clip;
    const float mi = a.beta1 * m[i] + c1 * gi;
    const float vi = a.beta2 * v[i] + c2 * gi * gi;
    // IEEE sqrt and division (no fast-math intrinsics) so the result matches the CPU loop.
    pi -= s.step_size * mi / (sqrtf(vi) * s.inv_sqrt_bc2 + a.eps);
    m[i] = mi;
    v[i] = vi;
    p[i] = pi;
    if (copy) copy[i] = __float2bfloat16_rn(pi);
  }
}
}  // namespace

void adamw_step(float* p, const float* g, float* m, float* v, bf16* copy, const optim::AdamWKernelArgs& a) {
  if (a.n == 0) return;
  constexpr int kThreads = 256;
  adamw_kernel<<<grid_for(a.n, kThreads), kThreads, 0, stream()>>>(p, g, m, v, reinterpret_cast<__nv_bfloat16*>(copy),
                                                                   a);
  SPARROW_CUDA_LAUNCH_CHECK();
}

}  // namespace sparrow::cuda
