// How a matmul operand sits in memory, as the CPU (Eigen) and CUDA (cuBLASLt) kernels take it:
// per batch element a row-major matrix with unit column stride and leading dimension `ld`,
// starting at an element offset into the storage of `t`. `trans` says the stored matrix is the
// transpose of the one multiplied (so a transposed view costs no copy: it is mapped, not moved).
#pragma once
#include <cstdint>
#include <vector>

#include "framework/core/tensor.h"

namespace sparrow {

struct GemmOperand {
  Tensor t;                      // owns the storage; offsets are from its storage base
  bool trans = false;            // multiply by the transpose of the stored matrix
  int64_t rows = 0, cols = 0;    // the stored matrix (before `trans`)
  int64_t ld = 0;                // elements between consecutive stored rows (>= cols)
  std::vector<int64_t> offsets;  // one per batch element, in elements
};

// What the GEMM does to its product P = op(A)·op(B) before storing C (CUDA, batch 1; cuBLASLt
// epilogues, so C is written once with no separate pass over it). bias: contiguous [N] of C's
// dtype; aux: contiguous [M, N] of C's dtype.
enum class GemmEpilogue {
  None,         // C = P
  Bias,         // C = P + bias (per row of C)
  GeluAuxBias,  // aux = P + bias, C = gelu(aux)                       (the MLP's first layer)
  DGelu,        // C = P ∘ gelu'(aux)                                   (its backward)
};

// C[i] (M×N, contiguous, batch-major in `c`) = op(A[i]) · op(B[i]) for every batch element i.
struct GemmProblem {
  GemmOperand a, b;
  int64_t batch = 1, m = 0, n = 0, k = 0;
  GemmEpilogue epilogue = GemmEpilogue::None;
  Tensor bias, aux;
  // Optional (batch 1, None or Bias epilogue): C += residual, contiguous [M, N] of C's dtype. On the
  // GPU it is the GEMM's own C input (β = 1), so a residual connection after a projection costs one
  // more read inside the GEMM instead of a separate add (two reads and a write of [M, N]).
  Tensor residual;
};

}  // namespace sparrow
