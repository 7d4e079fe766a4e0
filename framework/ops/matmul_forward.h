// The GEMM behind matmul, linear and mlp_gelu, without autograd (for ops that record their own
// node). Operands are detached and their shapes already checked by the caller.
#pragma once
#include <cstdint>

#include "framework/core/tensor.h"
#include "framework/ops/matmul_layout.h"

namespace sparrow::detail {

struct GemmExtras {
  GemmEpilogue epilogue = GemmEpilogue::None;
  Tensor bias, aux;         // as GemmProblem
  bool* applied = nullptr;  // set false when a GELU epilogue could not run (CPU, or no cuBLASLt
                            // algorithm): the result is then the plain product
  Tensor residual;          // as GemmProblem: added to the product (the output's shape and dtype)
};

// op(a)·op(b) over broadcast batch dims: [batch..., m, n]. A Bias epilogue always completes.
Tensor matmul_forward(const Tensor& a, const Tensor& b, bool ta, bool tb, const Shape& batch_shape, int64_t m,
                      int64_t n, int64_t k, const GemmExtras& extras = {});

}  // namespace sparrow::detail
