// Forward matmul FLOPs of block attention, counted on the tiles the kernel really computes:
// 4·rows·cols·D per (query block, key block) pair (Q Kᵀ and P V, 2 FLOPs a multiply-add), with
// the ragged last blocks at their true size. Per batch·head; callers multiply by B.
#pragma once
#include <algorithm>
#include <cstdint>

#include "attention/layout/block_layout.h"

namespace sparrow::attn {

inline double block_pair_flops(int64_t rows, int64_t cols, int64_t head_dim) {
  return 4.0 * static_cast<double>(rows) * static_cast<double>(cols) * static_cast<double>(head_dim);
}

// Σ over one head's active pairs.
inline double layout_head_flops(const BlockCSR& c, int64_t Nq, int64_t Nk, int64_t bs, int64_t head_dim) {
  double f = 0;
  const int64_t nqb = static_cast<int64_t>(c.row_ptr.size()) - 1;
  for (int64_t qb = 0; qb < nqb; ++qb) {
    const int64_t rows = std::min(bs, Nq - qb * bs);
    for (int64_t e = c.row_ptr[qb]; e < c.row_ptr[qb + 1]; ++e)
      f += block_pair_flops(rows, std::min(bs, Nk - c.col_idx[e] * bs), head_dim);
  }
  return f;
}

// The dense attention's pairs for one head (causal: key blocks up to and including the diagonal).
inline double dense_head_flops(int64_t N, int64_t bs, int64_t head_dim, bool causal) {
  if (!causal) return block_pair_flops(N, N, head_dim);
  double f = 0;
  for (int64_t q0 = 0; q0 < N; q0 += bs) f += block_pair_flops(std::min(bs, N - q0), std::min(N, q0 + bs), head_dim);
  return f;
}

}  // namespace sparrow::attn
