// Softmax over a dim of extent D, one "line" (D elements, stride `inner`) at a time, lines in
// parallel. In the compute type A, with m = max x:
//   softmax:     y = exp(x − m) / Σ exp(x − m)
//   log_softmax: y = x − m − log Σ exp(x − m)
// Backward from the saved output y:
//   softmax:     dx = y ∘ (dy − Σ dy∘y)            (Jacobian diag(y) − y yᵀ)
//   log_softmax: dx = dy − exp(y) · Σ dy            (Jacobian I − 1·softmaxᵀ)
#include "framework/ops/cpu/softmax.h"

#include <cmath>

#include "framework/ops/cpu/fused_util.h"

namespace sparrow::cpu {

namespace {

struct Lines {
  int64_t outer, D, inner;
};

Lines split_at(const Shape& s, int64_t dim) {
  Lines l{1, s[dim], 1};
  for (int64_t i = 0; i < dim; ++i) l.outer *= s[i];
  for (size_t i = dim + 1; i < s.size(); ++i) l.inner *= s[i];
  return l;
}

template <class T>
void forward_impl(bool log, const Tensor& x, int64_t dim, Tensor& y) {
  using A = acc_t<T>;
  const Lines l = split_at(x.shape(), dim);
  const int64_t lines = l.outer * l.inner, D = l.D, st = l.inner;
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
#pragma omp parallel for schedule(static) if (lines * D >= kParallelMin)
  for (int64_t k = 0; k < lines; ++k) {
    const int64_t base = (k / st) * D * st + (k % st);
    const T* xr = xp + base;
    T* yr = yp + base;
    A m = -INFINITY;
    for (int64_t j = 0; j < D; ++j) m = std::max(m, load_acc(xr[j * st]));
    A s = 0;
    for (int64_t j = 0; j < D; ++j) s += std::exp(load_acc(xr[j * st]) - m);
    if (log) {
      const A lse = m + std::log(s);
      for (int64_t j = 0; j < D; ++j) yr[j * st] = store_as<T>(load_acc(xr[j * st]) - lse);
    } else {
      const A inv = A(1) / s;
      for (int64_t j = 0; j < D; ++j) yr[j * st] = store_as<T>(std::exp(load_acc(xr[j * st]) - m) * inv);
    }
  }
}

template <class T>
void backward_impl(bool log, const Tensor& dy, const Tensor& y, int64_t dim, Tensor& dx) {
  using A = acc_t<T>;
  const Lines l = split_at(y.shape(), dim);
  const int64_t lines = l.outer * l.inner, D = l.D, st = l.inner;
  const T* gp = dy.data<T>();
  const T* yp = y.data<T>();
  T* dp = dx.data<T>();
#pragma omp parallel for schedule(static) if (lines * D >= kParallelMin)
  for (int64_t k = 0; k < lines; ++k) {
    const int64_t base = (k / st) * D * st + (k % st);
    const T* gr = gp + base;
    const T* yr = yp + base;
    T* dr = dp + base;
    A s = 0;
    if (log) {
      for (int64_t j = 0; j < D; ++j) s += load_acc(gr[j * st]);
      for (int64_t j = 0; j < D; ++j)
        dr[j * st] = store_as<T>(load_acc(gr[j * st]) - std::exp(load_acc(yr[j * st])) * s);
    } else {
      for (int64_t j = 0; j < D; ++j) s += load_acc(gr[j * st]) * load_acc(yr[j * st]);
      for (int64_t j = 0; j < D; ++j) dr[j * st] = store_as<T>(load_acc(yr[j * st]) * (load_acc(gr[j * st]) - s));
    }
  }
}

}  // namespace

void softmax_forward(bool log, const Tensor& x, int64_t dim, Tensor& y) {
  if (x.numel() == 0) return;
  SPARROW_CPU_FLOAT_DISPATCH(x.dtype(), log ? "log_softmax" : "softmax", [&] { forward_impl<T>(log, x, dim, y); });
}

void softmax_backward(bool log, const Tensor& dy, const Tensor& y, int64_t dim, Tensor& dx) {
  if (y.numel() == 0) return;
  SPARROW_CPU_FLOAT_DISPATCH(y.dtype(), log ? "log_softmax backward" : "softmax backward",
                             [&] { backward_impl<T>(log, dy, y, dim, dx); });
}

}  // namespace sparrow::cpu
