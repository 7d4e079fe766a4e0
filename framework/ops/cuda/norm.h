// CUDA kernels of layer_norm and rms_norm over the last dim (same contract as ops/cpu/norm.h):
// contiguous x, y [rows, D], weight/bias [D], mean/rstd [rows] in the stats dtype (f64 for f64
// x, else f32). One block per row, f32 accumulation for bf16/f32.
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::cuda {

void norm_forward(bool centered, const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& y,
                  Tensor& mean, Tensor& rstd);
// dx_add (optional, laid out as x): added into dx, dx = dx_add + ∂L/∂x, in the same pass.
void norm_backward(bool centered, const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& mean,
                   const Tensor& rstd, const Tensor& dx_add, Tensor& dx, Tensor& dweight, Tensor& dbias);

}  // namespace sparrow::cuda
