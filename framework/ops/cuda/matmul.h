// CUDA GEMM through cuBLASLt: bf16 in/out with fp32 accumulation, f32 (no TF32, so it agrees
// tightly with the CPU), f64. out[i] = op(A[i])·op(B[i]) for every batch element.
#pragma once
#include "framework/core/tensor.h"
#include "framework/ops/matmul_layout.h"

namespace sparrow::cuda {

// out: contiguous [batch..., M, N] on the operands' device, of their dtype. Returns false when
// p.epilogue is a GELU one and cuBLASLt has no algorithm for it here: then out holds the plain
// product and the caller applies the rest (a Bias epilogue always completes).
bool matmul(const GemmProblem& p, Tensor& out);

}  // namespace sparrow::cuda
