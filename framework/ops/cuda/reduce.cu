// Reductions on the GPU. Two layouts cover the common cases with coalesced reads:
//   rows    — a block (or, for few long rows, several blocks) per output; threads stride the
//             reduced range (last-dim and all-dims sums read memory in order);
//   columns — when the kept dims are innermost and contiguous ([M, N] → [N], bias gradients): a
//             warp reads 32 neighbouring outputs of one reduced row at once.
// A reduction split across several blocks writes partial sums, reduced by a second small kernel
// (deterministic: no atomics).
#include <algorithm>

#include "framework/cuda/runtime.h"
#include "framework/ops/cuda/map.cuh"
#include "framework/ops/cuda/reduce.h"

namespace sparrow::cuda {

namespace {

// An index space (shape, strides) passed by value; offset of row-major index i.
StridedDesc space(const Shape& shape, const Shape& strides) {
  SPARROW_CHECK(shape.size() <= static_cast<size_t>(kMaxDims), "CUDA reduce: at most ", kMaxDims,
                " non-mergeable dims, got ", shape_str(shape));
  StridedDesc d;
  d.ndim = static_cast<int>(shape.size());
  for (int i = 0; i < d.ndim; ++i) {
    d.shape[i] = shape[i];
    d.stride[i] = strides[i];
  }
  return d;
}

template <class A>
__device__ A warp_sum(A v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32); the result is valid in thread 0.
template <class A>
__device__ A block_sum(A v) {
  __shared__ A part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = threadIdx.x < (blockDim.x >> 5) ? part[lane] : A(0);
  if (warp == 0) v = warp_sum(v);
  return v;
}

// Block (blockIdx.x = output o, blockIdx.y = split s) sums r in [s·chunk, (s+1)·chunk).
// kFlat: the reduced space is one dim of stride 1 (no index arithmetic).
template <class T, bool kFlat>
__global__ void sum_rows(const T* p, StridedDesc kept, StridedDesc red, int64_t R, int64_t chunk,
                         typename Acc<T>::type scale, T* out, typename Acc<T>::type* partial) {
  using A = typename Acc<T>::type;
  const int64_t o = blockIdx.x;
  const T* q = p + kept.at(o);
  const int64_t r0 = blockIdx.y * chunk, r1 = min(R, r0 + chunk);
  A acc = 0;
  for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x) acc += A(to_f(q[kFlat ? r : red.at(r)]));
  acc = block_sum(acc);
  if (threadIdx.x == 0) {
    if (gridDim.y == 1)
      out[o] = store<T>(acc * scale);
    else
      partial[o * gridDim.y + blockIdx.y] = acc;
  }
}

// Short rows (R ≤ 32) over many outputs: a thread per output, no block reduction.
template <class T>
__global__ void sum_short_rows(const T* p, StridedDesc kept, StridedDesc red, int64_t O, int64_t R,
                               typename Acc<T>::type scale, T* out) {
  using A = typename Acc<T>::type;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < O; o += int64_t(gridDim.x) * blockDim.x) {
    const T* q = p + kept.at(o);
    A acc = 0;
    for (int64_t r = 0; r < R; ++r) acc += A(to_f(q[red.at(r)]));
    out[o] = store<T>(acc * scale);
  }
}

// Block (32 × 8 threads) covers 32·V neighbouring outputs, V per thread (one 16-byte load of a
// reduced row where the layout allows); the 8 thread rows stride the reduced range of split
// blockIdx.y, then fold through shared memory. kOneDim: the reduced range is one strided dim
// (the bias-gradient case), so a row's offset is one multiply instead of a divmod per dim.
template <class T, int V, bool kOneDim>
__global__ void sum_columns(const T* p, int64_t O, StridedDesc red, int64_t R, int64_t chunk,
                            typename Acc<T>::type scale, T* out, typename Acc<T>::type* partial) {
  using A = typename Acc<T>::type;
  __shared__ A part[8][32][V + 1];
  const int64_t j0 = (blockIdx.x * 32 + threadIdx.x) * int64_t(V);
  const int64_t r0 = blockIdx.y * chunk, r1 = min(R, r0 + chunk);
  A acc[V];
#pragma unroll
  for (int v = 0; v < V; ++v) acc[v] = 0;
  if (j0 < O) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) {
      const int64_t row = kOneDim ? red.offset + r * red.stride[0] : red.at(r);
      const Lanes<T, V> x = load_lanes<T, V>(p + row + j0, false);
#pragma unroll
      for (int v = 0; v < V; ++v) acc[v] += A(to_f(x.v[v]));
    }
  }
#pragma unroll
  for (int v = 0; v < V; ++v) part[threadIdx.y][threadIdx.x][v] = acc[v];
  __syncthreads();
  if (threadIdx.y == 0 && j0 < O) {
    for (int y = 1; y < 8; ++y)
#pragma unroll
      for (int v = 0; v < V; ++v) acc[v] += part[y][threadIdx.x][v];
#pragma unroll
    for (int v = 0; v < V; ++v) {
      if (gridDim.y == 1)
        out[j0 + v] = store<T>(acc[v] * scale);
      else
        partial[blockIdx.y * O + j0 + v] = acc[v];
    }
  }
}

template <class T, int V>
void launch_sum_columns(dim3 grid, const T* p, int64_t O, const StridedDesc& red, int64_t R, int64_t chunk,
                        typename Acc<T>::type scale, T* out, typename Acc<T>::type* partial) {
  if (red.ndim == 1)
    sum_columns<T, V, true><<<grid, dim3(32, 8), 0, stream()>>>(p, O, red, R, chunk, scale, out, partial);
  else
    sum_columns<T, V, false><<<grid, dim3(32, 8), 0, stream()>>>(p, O, red, R, chunk, scale, out, partial);
  SPARROW_CUDA_LAUNCH_CHECK();
}

// out[o] = scale · Σ_s partial[o·so + s·ss]
template <class T>
__global__ void sum_partials(const typename Acc<T>::type* partial, int64_t O, int64_t S, int64_t so, int64_t ss,
                             typename Acc<T>::type scale, T* out) {
  using A = typename Acc<T>::type;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < O; o += int64_t(gridDim.x) * blockDim.x) {
    A acc = 0;
    for (int64_t s = 0; s < S; ++s) acc += partial[o * so + s * ss];
    out[o] = store<T>(acc * scale);
  }
}

// Max over one dim: a warp per output. `better` orders (value, index): NaN above everything
// (so it propagates), then larger values, then the smaller index (the first maximum).
template <class A>
__device__ __forceinline__ bool better(A v, int64_t i, A best, int64_t bi) {
  if (isnan(best)) return isnan(v) && i < bi;
  if (isnan(v)) return true;
  return v > best || (v == best && i < bi);
}

template <class T>
__global__ void max_warps(const T* p, StridedDesc kept, int64_t O, int64_t n, int64_t stride, T* out, int32_t* idx) {
  using A = typename Acc<T>::type;
  const int64_t o = blockIdx.x * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (o >= O) return;  // whole warps leave together
  const T* q = p + kept.at(o);
  A best = -INFINITY;
  int64_t bi = n;
  for (int64_t r = lane; r < n; r += 32) {
    const A v = A(to_f(q[r * stride]));
    if (better(v, r, best, bi)) {
      best = v;
      bi = r;
    }
  }
  for (int s = 16; s > 0; s >>= 1) {
    const A ov = __shfl_down_sync(0xffffffffu, best, s);
    const int64_t oi = __shfl_down_sync(0xffffffffu, bi, s);
    if (better(ov, oi, best, bi)) {
      best = ov;
      bi = oi;
    }
  }
  if (lane == 0) {
    out[o] = store<T>(best);
    idx[o] = static_cast<int32_t>(bi);
  }
}

template <class T>
__global__ void max_scatter(const T* g, const int32_t* idx, int64_t outer, int64_t n, int64_t inner, T* gi) {
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < outer * inner;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = k / inner, i = k % inner;
    gi[(o * n + idx[k]) * inner + i] = g[k];
  }
}

constexpr int64_t kRowsPerSplit = 4096;  // reduced elements per block when a row is split
constexpr int64_t kTargetBlocks = 1024;  // enough blocks to fill the GPU when splitting

}  // namespace

void sum(const Tensor& a, const Shape& kept_shape, const Shape& kept_strides, const Shape& red_shape,
         const Shape& red_strides, double scale, Tensor& out) {
  const int64_t O = shape_numel(kept_shape), R = shape_numel(red_shape);
  if (O == 0) return;
  SPARROW_CUDA_FLOAT_DISPATCH(a.dtype(), "sum", [&] {
    using A = typename Acc<T>::type;
    const DType acc_dtype = sizeof(A) == 8 ? DType::F64 : DType::F32;
    const T* p = static_cast<const T*>(a.data_ptr());
    T* o = static_cast<T*>(out.data_ptr());
    const StridedDesc red = space(red_shape, red_strides);
    Tensor partial;
    if (kept_shape.size() == 1 && kept_strides[0] == 1 && O >= 16 && R > 1) {
      // Lanes per thread: 16 bytes when every reduced row starts V-aligned.
      int V = static_cast<int>(16 / sizeof(T));
      auto aligned = [&](int v) {
        if (O % v != 0 || reinterpret_cast<uintptr_t>(p) % (v * sizeof(T)) != 0) return false;
        for (int64_t st : red_strides)
          if (st % v != 0) return false;
        return true;
      };
      while (V > 1 && !aligned(V)) V /= 2;
      const int64_t bx = (O + 32 * V - 1) / (32 * V);
      const int64_t S = bx >= kTargetBlocks / 4 || R <= 256
                            ? 1
                            : std::min<int64_t>((R + 255) / 256, std::max<int64_t>(1, kTargetBlocks / bx));
      const int64_t chunk = (R + S - 1) / S;
      if (S > 1) partial = empty({S * O}, acc_dtype, a.device());
      A* pp = S > 1 ? static_cast<A*>(partial.data_ptr()) : nullptr;
      const dim3 grid{unsigned(bx), unsigned(S)};
      switch (V) {
        case 8:
          launch_sum_columns<T, 8>(grid, p, O, red, R, chunk, A(scale), o, pp);
          break;
        case 4:
          launch_sum_columns<T, 4>(grid, p, O, red, R, chunk, A(scale), o, pp);
          break;
        case 2:
          launch_sum_columns<T, 2>(grid, p, O, red, R, chunk, A(scale), o, pp);
          break;
        default:
          launch_sum_columns<T, 1>(grid, p, O, red, R, chunk, A(scale), o, pp);
          break;
      }
      if (S > 1) {
        sum_partials<T><<<grid_for(O), 256, 0, stream()>>>(pp, O, S, 1, O, A(scale), o);
        SPARROW_CUDA_LAUNCH_CHECK();
      }
      return;
    }
    const StridedDesc kept = space(kept_shape, kept_strides);
    if (R <= 32 && O >= 1024) {
      sum_short_rows<T><<<grid_for(O), 256, 0, stream()>>>(p, kept, red, O, R, A(scale), o);
      SPARROW_CUDA_LAUNCH_CHECK();
      return;
    }
    const int64_t S = O >= 256 || R <= 2 * kRowsPerSplit ? 1
                                                         : std::min<int64_t>((R + kRowsPerSplit - 1) / kRowsPerSplit,
                                                                             std::max<int64_t>(1, kTargetBlocks / O));
    const int64_t chunk = std::max<int64_t>(1, (R + S - 1) / S);
    if (S > 1) partial = empty({S * O}, acc_dtype, a.device());
    A* pp = S > 1 ? static_cast<A*>(partial.data_ptr()) : nullptr;
    const bool flat = red_shape.empty() || (red_shape.size() == 1 && red_strides[0] == 1);
    SPARROW_CHECK(O <= 0x7fffffff, "CUDA sum: too many outputs (", O, ")");
    const dim3 grid(static_cast<unsigned>(O), static_cast<unsigned>(S));
    // Smaller blocks for shorter rows keep every thread busy; more blocks fill the SMs.
    const int threads = chunk >= 2048 ? 256 : chunk >= 512 ? 128 : 64;
    if (flat)
      sum_rows<T, true><<<grid, threads, 0, stream()>>>(p, kept, red, R, chunk, A(scale), o, pp);
    else
      sum_rows<T, false><<<grid, threads, 0, stream()>>>(p, kept, red, R, chunk, A(scale), o, pp);
    SPARROW_CUDA_LAUNCH_CHECK();
    if (S > 1) {
      sum_partials<T><<<grid_for(O), 256, 0, stream()>>>(pp, O, S, S, 1, A(scale), o);
      SPARROW_CUDA_LAUNCH_CHECK();
    }
  });
}

void max(const Tensor& a, const Shape& kept_shape, const Shape& kept_strides, int64_t n, int64_t stride, Tensor& out,
         Tensor& idx) {
  const int64_t O = shape_numel(kept_shape);
  if (O == 0) return;
  SPARROW_CUDA_FLOAT_DISPATCH(a.dtype(), "max", [&] {
    const int64_t blocks = (O + 7) / 8;  // 8 warps a block, a warp an output
    max_warps<T><<<unsigned(blocks), 256, 0, stream()>>>(static_cast<const T*>(a.data_ptr()),
                                                         space(kept_shape, kept_strides), O, n, stride,
                                                         static_cast<T*>(out.data_ptr()), idx.data<int32_t>());
    SPARROW_CUDA_LAUNCH_CHECK();
  });
}

void max_backward(const Tensor& g, const Tensor& idx, int64_t outer, int64_t n, int64_t inner, Tensor& grad_in) {
  const int64_t m = outer * inner;
  if (m == 0) return;
  SPARROW_CUDA_FLOAT_DISPATCH(g.dtype(), "max backward", [&] {
    max_scatter<T><<<grid_for(m), 256, 0, stream()>>>(static_cast<const T*>(g.data_ptr()), idx.data<int32_t>(), outer,
                                                      n, inner, static_cast<T*>(grad_in.data_ptr()));
    SPARROW_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace sparrow::cuda
