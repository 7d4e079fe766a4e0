// Small helpers shared by the fused CPU kernels (norm, softmax, cross_entropy, dropout, rope):
// the compute type of a storage type (f64 computes in f64, f32 and bf16 in f32), loads and stores
// through it, and a dtype switch that binds T to the element type.
#pragma once
#include <cstdint>

#include "framework/core/bf16.h"
#include "framework/core/error.h"
#include "framework/core/tensor.h"

namespace sparrow::cpu {

// Below this many elements a kernel runs on one thread: forking a team costs more than the work.
constexpr int64_t kParallelMin = int64_t(1) << 15;

template <class T>
struct FusedAcc {
  using type = float;
};
template <>
struct FusedAcc<double> {
  using type = double;
};
template <class T>
using acc_t = typename FusedAcc<T>::type;

inline float load_acc(bf16 v) { return static_cast<float>(v); }
inline float load_acc(float v) { return v; }
inline double load_acc(double v) { return v; }

template <class T, class A>
inline T store_as(A v) {
  return static_cast<T>(v);
}
template <>
inline bf16 store_as<bf16, float>(float v) {
  return bf16(v);
}

}  // namespace sparrow::cpu

// Runs BODY with `T` bound to float, double or sparrow::bf16 for the float dtype DT.
#define SPARROW_CPU_FLOAT_DISPATCH(DT, OPNAME, ...)                                 \
  [&] {                                                                             \
    switch (DT) {                                                                   \
      case ::sparrow::DType::F32: {                                                 \
        using T = float;                                                            \
        return __VA_ARGS__();                                                       \
      }                                                                             \
      case ::sparrow::DType::F64: {                                                 \
        using T = double;                                                           \
        return __VA_ARGS__();                                                       \
      }                                                                             \
      case ::sparrow::DType::BF16: {                                                \
        using T = ::sparrow::bf16;                                                  \
        return __VA_ARGS__();                                                       \
      }                                                                             \
      default:                                                                      \
        ::sparrow::fail(OPNAME, ": unsupported dtype ", ::sparrow::dtype_name(DT)); \
    }                                                                               \
  }()
