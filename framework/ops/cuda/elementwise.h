// CUDA kernels of the two-operand elementwise ops (same contract as ops/cpu/elementwise.h):
// `out` has the broadcast shape and may be any strided view (add_ passes out == a); operands
// are broadcast by stride 0. BF16 computes in f32. All work on sparrow::cuda::stream().
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::cuda {

void add(const Tensor& a, const Tensor& b, Tensor& out);
void sub(const Tensor& a, const Tensor& b, Tensor& out);
void mul(const Tensor& a, const Tensor& b, Tensor& out);
void div(const Tensor& a, const Tensor& b, Tensor& out);
void tanh_backward(const Tensor& g, const Tensor& y, Tensor& out);  // g·(1 − y²)
void gelu_backward(const Tensor& g, const Tensor& x, Tensor& out);  // g·gelu'(x)
void silu_backward(const Tensor& g, const Tensor& x, Tensor& out);  // g·σ(x)(1 + x(1 − σ(x)))
void fill(Tensor& a, double v);                                     // any dtype, I32 included

}  // namespace sparrow::cuda
