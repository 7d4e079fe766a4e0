#include <algorithm>

#include "framework/cuda/runtime.h"
#include "framework/optim/cuda/grad_norm.h"

namespace sparrow::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;

__device__ double block_sum(double s) {
  __shared__ double warp_sums[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = s;
  __syncthreads();
  s = threadIdx.x < kThreads / 32 ? warp_sums[threadIdx.x] : 0.0;
  if (threadIdx.x < 32)
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
  return s;
}

// 16-byte loads where the buffer allows (the flat gradient buffer is 64-byte aligned).
__global__ void partial_squares_kernel(const float* __restrict__ x, int64_t n, double* __restrict__ partial) {
  double s = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if ((reinterpret_cast<uintptr_t>(x) & 15) == 0) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    const int64_t n4 = n / 4;
    for (int64_t i = t; i < n4; i += stride) {
      const float4 v = x4[i];
      s += double(v.x) * v.x + double(v.y) * v.y + double(v.z) * v.z + double(v.w) * v.w;
    }
    for (int64_t i = n4 * 4 + t; i < n; i += stride) s += double(x[i]) * x[i];
  } else {
    for (int64_t i = t; i < n; i += stride) s += double(x[i]) * x[i];
  }
  s = block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void finish_norm_kernel(const double* __restrict__ partial, int blocks, float* __restrict__ norm) {
  double s = 0;
  for (int i = threadIdx.x; i < blocks; i += blockDim.x) s += partial[i];
  s = block_sum(s);
  if (threadIdx.x == 0) norm[0] = static_cast<float>(sqrt(s));
}

}  // namespace

void grad_norm(const Tensor& x, Tensor& norm) {
  const int64_t n = x.numel();
  const int blocks =
      static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(kMaxBlocks, (n / 4 + kThreads - 1) / kThreads)));
  Tensor partial = empty({blocks}, DType::F64, x.device());
  partial_squares_kernel<<<blocks, kThreads, 0, stream()>>>(x.data<float>(), n, partial.data<double>());
  SPARROW_CUDA_LAUNCH_CHECK();
  finish_norm_kernel<<<1, kThreads, 0, stream()>>>(partial.data<double>(), blocks, norm.data<float>());
  SPARROW_CUDA_LAUNCH_CHECK();
}

}  // namespace sparrow::cuda
