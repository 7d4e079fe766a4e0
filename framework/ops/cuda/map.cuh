// One launcher for every elementwise kernel on the GPU: out[i] = f(in₁[i], …) over a shared shape,
// any strides (views, broadcasts), any dtype per operand. Used by copy/cast, the unary and binary
// ops and fill.
//
// Why it is shaped this way (measured on an H200, 2026-11-26): the first version indexed every
// element with a 64-bit divmod per dim per operand and moved 2-byte bf16 values one per thread;
// a [B, T, 3, H, D] → [3, B, H, T, D] bf16 copy ran at 1.7 ms for 300 MB (~0.35 TB/s of the
// card's ~4.3). Three changes bring such ops to the bandwidth bound:
//   1. coalesce (framework/core/strided.h): dims that every operand walks as one are merged, so a
//      contiguous op is 1-D and a bias add [R, C] + [C] is 2-D;
//   2. vectors: when the innermost dim is unit-stride (or broadcast, stride 0) for every operand and
//      everything else is a multiple of V, a thread moves V lanes with one 16-byte (or 8-byte)
//      access per operand; the index math is then paid once per V elements;
//   3. 32-bit divmod whenever the index and the dim fit (a 64-bit division is a ~70-instruction
//      subroutine; the 32-bit one is a handful).
#pragma once
#include <array>
#include <cstdint>
#include <type_traits>

#include "framework/core/strided.h"
#include "framework/cuda/runtime.h"
#include "framework/ops/cuda/strided.cuh"

namespace sparrow::cuda {

template <class T>
__device__ __forceinline__ T store(typename Acc<T>::type v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 store<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);
}

// N operands (operand 0 is the output) over one coalesced index space whose innermost dim is
// counted in vectors of V lanes. Offsets are in elements.
template <int N>
struct MapGeometry {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};      // innermost dim in vectors
  int64_t stride[N][kMaxDims] = {};  // innermost: per vector (V × the element stride)
  int64_t offset[N] = {};
  bool splat[N] = {};  // innermost stride 0: one value for all V lanes

  __device__ __forceinline__ void offsets(int64_t i, int64_t (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = offset[k];
    for (int d = ndim - 1; d > 0; --d) {
      int64_t q, c;
      if (((i | shape[d]) >> 32) == 0) {
        const uint32_t i32 = static_cast<uint32_t>(i), s32 = static_cast<uint32_t>(shape[d]);
        q = i32 / s32;
        c = i32 - static_cast<uint32_t>(q) * s32;
      } else {
        q = i / shape[d];
        c = i - q * shape[d];
      }
      i = q;
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += c * stride[k][d];
    }
    if (ndim > 0) {
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += i * stride[k][0];  // i < shape[0] by now
    }
  }
};

// V lanes of one operand: one aligned vector access, or one value repeated (splat).
template <class T, int V>
struct Lanes {
  T v[V];
};
template <class T, int V>
__device__ __forceinline__ Lanes<T, V> load_lanes(const T* p, bool splat) {
  Lanes<T, V> r;
  if constexpr (V == 1) {
    r.v[0] = p[0];
  } else {
    struct alignas(sizeof(T) * V) Vec {
      T v[V];
    };
    if (splat) {
      const T x = p[0];
#pragma unroll
      for (int j = 0; j < V; ++j) r.v[j] = x;
    } else {
      const Vec w = *reinterpret_cast<const Vec*>(p);
#pragma unroll
      for (int j = 0; j < V; ++j) r.v[j] = w.v[j];
    }
  }
  return r;
}
template <class T, int V>
__device__ __forceinline__ void store_lanes(T* p, const Lanes<T, V>& r) {
  if constexpr (V == 1) {
    p[0] = r.v[0];
  } else {
    struct alignas(sizeof(T) * V) Vec {
      T v[V];
    };
    Vec w;
#pragma unroll
    for (int j = 0; j < V; ++j) w.v[j] = r.v[j];
    *reinterpret_cast<Vec*>(p) = w;
  }
}

// out = f(a) lane by lane; f maps the compute type of TA to a value stored as TO.
template <int V, class TO, class TA, class F>
__global__ void map1_kernel(TO* o, const TA* a, MapGeometry<2> g, int64_t n, F f) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    g.offsets(i, off);
    const Lanes<TA, V> x = load_lanes<TA, V>(a + off[1], g.splat[1]);
    Lanes<TO, V> y;
#pragma unroll
    for (int j = 0; j < V; ++j) y.v[j] = f(x.v[j]);
    store_lanes<TO, V>(o + off[0], y);
  }
}

template <int V, class T, class F>
__global__ void map2_kernel(T* o, const T* a, const T* b, MapGeometry<3> g, int64_t n, F f) {
  using C = typename Acc<T>::type;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[3];
    g.offsets(i, off);
    const Lanes<T, V> x = load_lanes<T, V>(a + off[1], g.splat[1]);
    const Lanes<T, V> z = load_lanes<T, V>(b + off[2], g.splat[2]);
    Lanes<T, V> y;
#pragma unroll
    for (int j = 0; j < V; ++j) y.v[j] = store<T>(f(C(to_f(x.v[j])), C(to_f(z.v[j]))));
    store_lanes<T, V>(o + off[0], y);
  }
}

// f applied in the compute type of T (f32 for bf16), the result rounded back to T.
template <class T, class F>
struct InComputeType {
  F f;
  __device__ __forceinline__ T operator()(T x) const { return store<T>(f(typename Acc<T>::type(to_f(x)))); }
};

// Value conversion between storage types (exact where the target holds the value; i32 goes
// through double, which holds every i32).
template <class TO, class TA>
struct Convert {
  __device__ __forceinline__ TO operator()(TA x) const {
    if constexpr (std::is_same_v<TO, TA>) {
      return x;
    } else if constexpr (std::is_same_v<TA, int32_t> || std::is_same_v<TA, double>) {
      return from_f<TO>(static_cast<double>(x));
    } else {
      return from_f<TO>(to_f(x));
    }
  }
};

// Host side: the operands as (tensor broadcast to the output's shape, element size).
template <int N>
struct MapPlan {
  MapGeometry<N> geo;
  int vec = 1;    // lanes per thread
  int64_t n = 0;  // threads' work items (vectors)
};

// Strides of t as seen at `shape` (broadcast dims get stride 0).
inline Shape map_strides(const Tensor& t, const Shape& shape) {
  return broadcast_strides(t.shape(), t.strides(), shape);
}

// ops: the output first. Picks the widest V ≤ 16 bytes / (largest element) that every operand's
// layout and alignment allow.
template <int N>
MapPlan<N> plan_map(const Shape& shape, const std::array<const Tensor*, N>& ops) {
  Shape s = shape;
  std::array<Shape, N> st;
  size_t widest = 1;
  for (int k = 0; k < N; ++k) {
    st[k] = map_strides(*ops[k], shape);
    widest = std::max(widest, dtype_size(ops[k]->dtype()));
  }
  coalesce<N>(s, st);
  SPARROW_CHECK(s.size() <= static_cast<size_t>(kMaxDims), "CUDA elementwise: at most ", kMaxDims,
                " non-mergeable dims, got ", shape_str(shape));
  MapPlan<N> p;
  int v = static_cast<int>(16 / widest);
  auto fits = [&](int V) {
    if (s.empty() || s.back() % V != 0) return false;
    for (int k = 0; k < N; ++k) {
      const int64_t inner = st[k].back();
      if (inner != 1 && !(inner == 0 && k > 0)) return false;  // the output is never a splat
      if (inner == 0) continue;
      for (size_t d = 0; d + 1 < s.size(); ++d)
        if (st[k][d] % V != 0) return false;
      const auto addr = reinterpret_cast<uintptr_t>(ops[k]->impl().storage->data) +
                        static_cast<uintptr_t>(ops[k]->offset()) * dtype_size(ops[k]->dtype());
      if (addr % (static_cast<uintptr_t>(V) * dtype_size(ops[k]->dtype())) != 0) return false;
    }
    return true;
  };
  while (v > 1 && !fits(v)) v /= 2;
  p.vec = v;
  p.geo.ndim = static_cast<int>(s.size());
  p.n = 1;
  for (size_t d = 0; d < s.size(); ++d) {
    const bool inner = d + 1 == s.size();
    p.geo.shape[d] = inner ? s[d] / v : s[d];
    p.n *= p.geo.shape[d];
    for (int k = 0; k < N; ++k) p.geo.stride[k][d] = inner ? st[k][d] * v : st[k][d];
  }
  for (int k = 0; k < N; ++k) {
    p.geo.offset[k] = ops[k]->offset();
    p.geo.splat[k] = !s.empty() && st[k].back() == 0;
  }
  if (s.empty()) p.n = 1;  // a single element (all dims of size 1)
  return p;
}

// Launches KERNEL<V, ...> with V the plan's lane count.
#define SPARROW_MAP_LAUNCH(plan, LAUNCH) \
  do {                                   \
    switch ((plan).vec) {                \
      case 8: {                          \
        constexpr int V = 8;             \
        LAUNCH;                          \
        break;                           \
      }                                  \
      case 4: {                          \
        constexpr int V = 4;             \
        LAUNCH;                          \
        break;                           \
      }                                  \
      case 2: {                          \
        constexpr int V = 2;             \
        LAUNCH;                          \
        break;                           \
      }                                  \
      default: {                         \
        constexpr int V = 1;             \
        LAUNCH;                          \
        break;                           \
      }                                  \
    }                                    \
    SPARROW_CUDA_LAUNCH_CHECK();         \
  } while (0)

}  // namespace sparrow::cuda
