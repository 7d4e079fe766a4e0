// CPU kernels of the two-operand elementwise ops, and the strided loop every CPU elementwise
// kernel (here and in unary.cpp) runs on.
//
// Kernel contract: `out` has the broadcast shape of the operands and may be any strided view
// (add_ passes out == a); operands are broadcast to out's shape by stride 0. Dtypes are equal
// and floating (checked by the front end). BF16 loads to f32, computes, rounds on store.
#pragma once
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include "framework/core/bf16.h"
#include "framework/core/error.h"
#include "framework/core/strided.h"
#include "framework/core/tensor.h"

namespace sparrow::cpu {

void add(const Tensor& a, const Tensor& b, Tensor& out);
void sub(const Tensor& a, const Tensor& b, Tensor& out);
void mul(const Tensor& a, const Tensor& b, Tensor& out);
void div(const Tensor& a, const Tensor& b, Tensor& out);
// Fused gradients of the unary ops (one pass instead of a chain of ops):
void tanh_backward(const Tensor& g, const Tensor& y, Tensor& out);  // g·(1 − y²), y = tanh(x)
void gelu_backward(const Tensor& g, const Tensor& x, Tensor& out);  // g·gelu'(x)
void silu_backward(const Tensor& g, const Tensor& x, Tensor& out);  // g·σ(x)(1 + x(1 − σ(x)))
// Every element of a (any dtype, I32 included, any strides) set to v.
void fill(Tensor& a, double v);

// ------------------------------------------------------------------------------------------------
// The loop machinery (shared with unary.cpp).
namespace loop {

// Compute type for a storage type: f64 stays f64, bf16 and f32 compute in f32.
template <class T>
struct Compute {
  using type = float;
};
template <>
struct Compute<double> {
  using type = double;
};
template <>
struct Compute<int32_t> {
  using type = int32_t;
};

template <class T>
inline typename Compute<T>::type load(T v) {
  return static_cast<typename Compute<T>::type>(v);
}
inline float load(bf16 v) { return static_cast<float>(v); }
template <class T, class C>
inline T store(C v) {
  return static_cast<T>(v);
}
template <>
inline bf16 store<bf16, float>(float v) {
  return bf16(v);
}

template <class T>
struct Tag {
  using type = T;
};

// Calls fn(Tag<T>{}) with T the element type of a floating dtype.
template <class Fn>
void dispatch_float(DType t, const char* op, Fn&& fn) {
  switch (t) {
    case DType::F32:
      return fn(Tag<float>{});
    case DType::F64:
      return fn(Tag<double>{});
    case DType::BF16:
      return fn(Tag<bf16>{});
    case DType::I32:
      break;
  }
  fail(op, ": needs a floating dtype, got ", dtype_name(t));
}

constexpr int64_t kChunk = 16384;        // elements per task
constexpr int64_t kParallelMin = 32768;  // below this, one thread (the fork costs more)

// Runs body(len, offsets, inner_strides) over every innermost run of `shape`, where offsets[k]
// is operand k's element offset at the run's start. Runs are cut into chunks of kChunk and the
// chunks are spread over OpenMP threads when the total is large.
template <int K, class Body>
void for_each_run(Shape shape, std::array<Shape, K> st, const std::array<int64_t, K>& base, Body&& body) {
  int64_t n = shape_numel(shape);
  if (n == 0) return;
  coalesce<K>(shape, st);
  if (shape.empty()) {  // a single element
    shape.push_back(1);
    for (auto& s : st) s.push_back(1);
  }
  const int nd = static_cast<int>(shape.size());
  const int64_t inner = shape[nd - 1];
  const int64_t rows = n / inner;
  const int64_t per_row = (inner + kChunk - 1) / kChunk;
  const int64_t tasks = rows * per_row;
  std::array<int64_t, K> inner_st;
  for (int k = 0; k < K; ++k) inner_st[k] = st[k][nd - 1];
#pragma omp parallel for schedule(static) if (n >= kParallelMin && tasks > 1)
  for (int64_t task = 0; task < tasks; ++task) {
    int64_t row = task / per_row, j0 = (task % per_row) * kChunk;
    std::array<int64_t, K> off = base;
    for (int d = nd - 2; d >= 0; --d) {
      int64_t i = row % shape[d];
      row /= shape[d];
      for (int k = 0; k < K; ++k) off[k] += i * st[k][d];
    }
    for (int k = 0; k < K; ++k) off[k] += j0 * inner_st[k];
    body(std::min(kChunk, inner - j0), off, inner_st);
  }
}

template <class T>
T* base_ptr(const Tensor& t) {
  return static_cast<T*>(t.impl().storage->data);
}

// out = f(a, b) with a and b broadcast to out's shape.
template <class T, class F>
void binary(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  T* o = base_ptr<T>(out);
  const T* pa = base_ptr<T>(a);
  const T* pb = base_ptr<T>(b);
  Shape sa = a.shape() == out.shape() ? a.strides() : broadcast_strides(a.shape(), a.strides(), out.shape());
  Shape sb = b.shape() == out.shape() ? b.strides() : broadcast_strides(b.shape(), b.strides(), out.shape());
  for_each_run<3>(out.shape(), {out.strides(), sa, sb}, {out.offset(), a.offset(), b.offset()},
                  [&](int64_t n, const std::array<int64_t, 3>& off, const std::array<int64_t, 3>& s) {
                    T* y = o + off[0];
                    const T* x0 = pa + off[1];
                    const T* x1 = pb + off[2];
                    if (s[0] == 1 && s[1] == 1 && s[2] == 1) {  // the flat, vectorizable case
                      for (int64_t i = 0; i < n; ++i) y[i] = store<T>(f(load(x0[i]), load(x1[i])));
                    } else if (s[0] == 1 && s[1] == 1 && s[2] == 0) {  // b constant along the run
                      const auto v1 = load(*x1);
                      for (int64_t i = 0; i < n; ++i) y[i] = store<T>(f(load(x0[i]), v1));
                    } else if (s[0] == 1 && s[1] == 0 && s[2] == 1) {  // a constant along the run
                      const auto v0 = load(*x0);
                      for (int64_t i = 0; i < n; ++i) y[i] = store<T>(f(v0, load(x1[i])));
                    } else {
                      for (int64_t i = 0; i < n; ++i) y[i * s[0]] = store<T>(f(load(x0[i * s[1]]), load(x1[i * s[2]])));
                    }
                  });
}

// out = f(a), same shape.
template <class T, class F>
void unary(const Tensor& a, Tensor& out, F f) {
  T* o = base_ptr<T>(out);
  const T* pa = base_ptr<T>(a);
  for_each_run<2>(out.shape(), {out.strides(), a.strides()}, {out.offset(), a.offset()},
                  [&](int64_t n, const std::array<int64_t, 2>& off, const std::array<int64_t, 2>& s) {
                    T* y = o + off[0];
                    const T* x = pa + off[1];
                    if (s[0] == 1 && s[1] == 1) {
                      for (int64_t i = 0; i < n; ++i) y[i] = store<T>(f(load(x[i])));
                    } else {
                      for (int64_t i = 0; i < n; ++i) y[i * s[0]] = store<T>(f(load(x[i * s[1]])));
                    }
                  });
}

}  // namespace loop
}  // namespace sparrow::cpu
