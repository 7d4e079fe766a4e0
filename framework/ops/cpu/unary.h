// CPU kernels of the one-operand ops: out = f(a), elementwise, same shape (out may be a itself,
// as mul_ passes it; a may be any strided view). Floating dtypes; BF16 computes in f32.
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::cpu {

void add_scalar(const Tensor& a, double s, Tensor& out);
void mul_scalar(const Tensor& a, double s, Tensor& out);
void pow_scalar(const Tensor& a, double p, Tensor& out);
void neg(const Tensor& a, Tensor& out);
void exp(const Tensor& a, Tensor& out);
void log(const Tensor& a, Tensor& out);
void tanh(const Tensor& a, Tensor& out);
void sqrt(const Tensor& a, Tensor& out);
void gelu(const Tensor& a, Tensor& out);  // tanh approximation
void silu(const Tensor& a, Tensor& out);

}  // namespace sparrow::cpu
