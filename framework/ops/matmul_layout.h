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

// C[i] (M×N, contiguous, batch-major in `c`) = op(A[i]) · op(B[i]) for every batch element i.
struct GemmProblem {
  GemmOperand a, b;
  int64_t batch = 1, m = 0, n = 0, k = 0;
};

}  // namespace sparrow
