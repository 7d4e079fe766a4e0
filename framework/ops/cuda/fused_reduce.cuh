// Warp and block reductions shared by the fused row kernels (norm, softmax, cross_entropy):
// sums, and the online (max, sum-of-exp) pair that gives a logsumexp in one pass over a row.
// Block reductions need blockDim.x a multiple of 32 (at most 1024) and hand the result to every
// thread; each begins with a barrier, so calls may follow one another on the same scratch.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace sparrow::cuda {

template <class A>
__device__ __forceinline__ A warp_sum(A v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// scratch: 32 elements of shared memory.
template <class A>
__device__ __forceinline__ A block_sum(A v, A* scratch) {
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  return warp_sum(lane < warps ? scratch[lane] : A(0));
}

// Running softmax normaliser: m = max seen, s = Σ exp(x − m). Merging rescales the smaller max.
template <class A>
struct MaxSum {
  A m, s;
};

template <class A>
__device__ __forceinline__ MaxSum<A> merge(MaxSum<A> a, MaxSum<A> b) {
  const A m = a.m > b.m ? a.m : b.m;
  if (m == -INFINITY) return {m, A(0)};  // both empty: avoid exp(−∞ + ∞)
  return {m, a.s * exp(a.m - m) + b.s * exp(b.m - m)};
}

template <class A>
__device__ __forceinline__ MaxSum<A> push(MaxSum<A> a, A x) {
  if (x == -INFINITY) return a;
  if (x <= a.m) return {a.m, a.s + exp(x - a.m)};
  return {x, a.s * exp(a.m - x) + A(1)};
}

template <class A>
__device__ __forceinline__ MaxSum<A> warp_maxsum(MaxSum<A> v) {
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum<A> u{__shfl_xor_sync(0xffffffffu, v.m, o), __shfl_xor_sync(0xffffffffu, v.s, o)};
    v = merge(v, u);
  }
  return v;
}

// scratch: 32 elements of shared memory.
template <class A>
__device__ __forceinline__ MaxSum<A> block_maxsum(MaxSum<A> v, MaxSum<A>* scratch) {
  v = warp_maxsum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  return warp_maxsum(lane < warps ? scratch[lane] : MaxSum<A>{A(-INFINITY), A(0)});
}

// Threads per row for a row of n elements: about 4 elements a thread, a warp at least, 1024 at most.
inline int row_threads(int64_t n) {
  int t = 32;
  while (t < 1024 && static_cast<int64_t>(t) * 4 < n) t *= 2;
  return t;
}

// Grid for a block-per-row kernel (rows beyond it are walked by a grid-stride loop).
inline unsigned row_blocks(int64_t rows) {
  return static_cast<unsigned>(rows < 1 ? 1 : (rows > (int64_t(1) << 30) ? (int64_t(1) << 30) : rows));
}

}  // namespace sparrow::cuda
