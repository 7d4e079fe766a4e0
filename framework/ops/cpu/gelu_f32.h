// GELU (the tanh form) over contiguous f32 with SIMD: glibc's tanhf is scalar (~35 cycles an
// element), which made GELU, forward and backward, ~30% of a CPU training step of the main job.
// Written with the logistic function, which Eigen evaluates in AVX-512/AVX2 registers through its
// vectorised exp (within an ulp or two of expf):
//   ½(1 + tanh u) = σ(2u),  ½(1 − tanh² u) = 2σ(2u)(1 − σ(2u)),  u = k(x + c·x³),
//   gelu(x) = x·s,  gelu'(x) = s + 2x·s(1 − s)·k(1 + 3c·x²),  s = σ(2u) = 1/(1 + e),  e = e^(−2u)
// with 1 − s = e·s, so neither tail cancels (1 + tanh u and 1 − tanh² u lose every digit in f32
// once |u| ≳ 8). k = √(2/π), c = 0.044715. Used by cpu::gelu and cpu::gelu_backward for
// contiguous f32 operands (the MLP's case); other dtypes and layouts keep the generic loop.
#pragma once
#include <cstdint>

namespace sparrow::cpu {

// y[i] = gelu(x[i]).
void gelu_f32(const float* x, float* y, int64_t n);
// dx[i] = g[i]·gelu'(x[i]). dx may alias g.
void gelu_backward_f32(const float* g, const float* x, float* dx, int64_t n);

}  // namespace sparrow::cpu
