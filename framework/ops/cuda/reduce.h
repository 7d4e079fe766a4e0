// CUDA kernels of the reductions (same contract as ops/cpu/reduce.h): the input as kept and
// reduced index spaces, (shape, strides) in elements from a.offset(); `out` contiguous.
// Accumulation in f32 for bf16/f32, f64 for f64.
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::cuda {

void sum(const Tensor& a, const Shape& kept_shape, const Shape& kept_strides, const Shape& red_shape,
         const Shape& red_strides, double scale, Tensor& out);
void max(const Tensor& a, const Shape& kept_shape, const Shape& kept_strides, int64_t n, int64_t stride, Tensor& out,
         Tensor& idx);
void max_backward(const Tensor& g, const Tensor& idx, int64_t outer, int64_t n, int64_t inner, Tensor& grad_in);

}  // namespace sparrow::cuda
