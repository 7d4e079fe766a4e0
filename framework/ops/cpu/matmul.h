// CPU GEMM (Eigen) for f32 and f64: out[i] = op(A[i])·op(B[i]) for every batch element.
#pragma once
#include "framework/core/tensor.h"
#include "framework/ops/matmul_layout.h"

namespace sparrow::cpu {

// out: contiguous [batch..., M, N] of the operands' dtype (F32 or F64). bf16 is widened to f32
// by the caller.
void matmul(const GemmProblem& p, Tensor& out);

}  // namespace sparrow::cpu
