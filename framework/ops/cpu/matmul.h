// CPU GEMM (Eigen) for f32 and f64: out[i] = op(A[i])·op(B[i]) for every batch element.
#pragma once
#include "framework/core/tensor.h"
#include "framework/ops/matmul_layout.h"

namespace sparrow::cpu {

// out: contiguous [batch..., M, N] of the operands' dtype (F32 or F64). bf16 is widened to f32
// by the caller. Applies a Bias epilogue (a second pass); returns false for a GELU one, which
// is left to the caller (out holds the plain product), as cuda::matmul does without an algorithm.
bool matmul(const GemmProblem& p, Tensor& out);

}  // namespace sparrow::cpu
