// Dropout on the GPU: one thread per group of 4 elements, one Philox-4x32-10 call per group —
// the same generator as framework/core/rng.cpp (Philox::generate), so the mask equals the CPU's
// bit for bit: element i keeps when Philox(seed, first + i/4)[i % 4] ≥ threshold. The counter
// also adds cuda::rng_shift(), 0 except in a CUDA-graph replay (cuda/graph.h), where it moves the
// captured counters to where the generator stands at that replay.
#include "framework/cuda/graph.h"
#include "framework/cuda/runtime.h"
#include "framework/ops/cuda/dropout.h"
#include "framework/ops/cuda/strided.cuh"

namespace sparrow::cuda {

namespace {

// Philox4x32-10, as Philox::generate: counter (lo, hi, 0, 0), key (seed lo, seed hi).
__device__ __forceinline__ void philox4x32_10(uint64_t seed, uint64_t counter, uint32_t out[4]) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
#pragma unroll
  for (int r = 0; r < 10; ++r) {
    const uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    const uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

template <class T>
__global__ void dropout_kernel(const T* __restrict__ in, T* __restrict__ out, int64_t n, uint64_t seed, uint64_t first,
                               const uint64_t* __restrict__ shift, uint32_t threshold, double scale) {
  using A = typename Acc<T>::type;
  const A s = static_cast<A>(scale);
  first += *shift;
  const int64_t groups = (n + 3) / 4;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < groups; g += int64_t(gridDim.x) * blockDim.x) {
    uint32_t r[4];
    philox4x32_10(seed, first + static_cast<uint64_t>(g), r);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t i = g * 4 + k;
      if (i < n) out[i] = from_f<T>(r[k] >= threshold ? static_cast<A>(to_f(in[i])) * s : A(0));
    }
  }
}

}  // namespace

void dropout_apply(const Tensor& in, Tensor& out, uint64_t seed, uint64_t first, uint32_t threshold, double scale) {
  const int64_t n = in.numel();
  if (n == 0) return;
  SPARROW_CUDA_FLOAT_DISPATCH(in.dtype(), "dropout", [&] {
    dropout_kernel<T><<<grid_for((n + 3) / 4), 256, 0, stream()>>>(static_cast<const T*>(in.data_ptr()),
                                                                   static_cast<T*>(out.data_ptr()), n, seed, first,
                                                                   rng_shift(in.device().index), threshold, scale);
    SPARROW_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace sparrow::cuda
