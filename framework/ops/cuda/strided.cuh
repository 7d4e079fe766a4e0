// Device-side helpers shared by the CUDA kernels: dtype dispatch, bf16 conversion, and strided
// indexing for inputs that are views or broadcasts (up to 8 dims).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "framework/core/tensor.h"

namespace sparrow::cuda {

constexpr int kMaxDims = 8;

// A tensor's geometry passed by value into a kernel. The element at row-major linear index i
// lives at offset + Σ_d idx_d(i)·stride_d.
struct StridedDesc {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t stride[kMaxDims] = {};
  int64_t offset = 0;

  __host__ __device__ int64_t at(int64_t i) const {
    int64_t off = offset;
    for (int d = ndim - 1; d >= 0; --d) {
      int64_t s = shape[d];
      off += (i % s) * stride[d];
      i /= s;
    }
    return off;
  }
};

// Geometry of t as laid out for `shape` (t broadcast to it when the shapes differ).
StridedDesc make_desc(const Tensor& t, const Shape& shape);
inline StridedDesc make_desc(const Tensor& t) { return make_desc(t, t.shape()); }

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ double to_f(double x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(int32_t x) { return static_cast<float>(x); }

template <class T>
__device__ __forceinline__ T from_f(double x);
template <>
__device__ __forceinline__ float from_f<float>(double x) {
  return static_cast<float>(x);
}
template <>
__device__ __forceinline__ double from_f<double>(double x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(double x) {
  return __float2bfloat16(static_cast<float>(x));
}
template <>
__device__ __forceinline__ int32_t from_f<int32_t>(double x) {
  return static_cast<int32_t>(x);
}

// Compute type for a storage type: bf16 computes in f32, f64 in f64.
template <class T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

}  // namespace sparrow::cuda

// Runs BODY with `T` bound to the C++ element type of dtype DT (float, double, __nv_bfloat16).
#define SPARROW_CUDA_FLOAT_DISPATCH(DT, OPNAME, ...)                                            \
  [&] {                                                                                         \
    switch (DT) {                                                                               \
      case ::sparrow::DType::F32: {                                                             \
        using T = float;                                                                        \
        return __VA_ARGS__();                                                                   \
      }                                                                                         \
      case ::sparrow::DType::F64: {                                                             \
        using T = double;                                                                       \
        return __VA_ARGS__();                                                                   \
      }                                                                                         \
      case ::sparrow::DType::BF16: {                                                            \
        using T = __nv_bfloat16;                                                                \
        return __VA_ARGS__();                                                                   \
      }                                                                                         \
      default:                                                                                  \
        ::sparrow::fail(OPNAME, ": unsupported dtype ", ::sparrow::dtype_name(DT), " on CUDA"); \
    }                                                                                           \
  }()
