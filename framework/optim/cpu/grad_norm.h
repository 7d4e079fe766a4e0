// Gradient norms on the host. sum_squares: Σ x² accumulated in double (OpenMP over large
// buffers). grad_norm: ‖x‖₂ of a contiguous f32 tensor into the one-element f32 tensor `norm`
// (same contract as optim/cuda/grad_norm.h).
#pragma once
#include <cstdint>

#include "framework/core/tensor.h"

namespace sparrow::cpu {

template <class T>
double sum_squares(const T* x, int64_t n) {
  double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return s;
}

void grad_norm(const Tensor& x, Tensor& norm);

}  // namespace sparrow::cpu
