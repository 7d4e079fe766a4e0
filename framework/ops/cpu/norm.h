// CPU kernels of layer_norm and rms_norm over the last dim. Every tensor is contiguous; x and y
// are [rows, D] in any leading shape, weight and bias [D], mean and rstd [rows] in the stats dtype
// (f64 for f64 x, else f32). The backward writes only the gradients passed defined.
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::cpu {

// centered: layer_norm (subtract the mean; bias optional). !centered: rms_norm (mean unused).
void norm_forward(bool centered, const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& y,
                  Tensor& mean, Tensor& rstd);
// dx_add (optional, laid out as x): added into dx, dx = dx_add + ∂L/∂x, in the same pass.
void norm_backward(bool centered, const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& mean,
                   const Tensor& rstd, const Tensor& dx_add, Tensor& dx, Tensor& dweight, Tensor& dbias);

}  // namespace sparrow::cpu
