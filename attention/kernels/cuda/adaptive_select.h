// Adaptive attention's block selection on the GPU (adaptive_select.cu): the same layout as
// select_adaptive_layout_from_means (attention/backends/adaptive.cpp) — per (batch·head, query
// block row) the sink blocks, the diagonal, and the best-scoring other blocks up to the row's
// budget, ties to the lower index — built on the device with its transpose, without the host
// waiting for the device. So an adaptive step can be captured in a CUDA graph like the others,
// and its selection costs kernels, not a round trip.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "framework/core/tensor.h"

namespace sparrow::attn::cuda {

struct DeviceLayout;

// qsel: the scoring query means [B, H, nb, D] (under causality already shifted: row r scored by
// q̄_{r−1}); kbar: the key means, same shape; both f32 or f64 on the current CUDA device.
// budgets: adaptive_row_budgets(...), nb entries, each ≥ the row's forced blocks. sinks: the
// sink blocks. The result has B·H stored heads (batch folded into heads) and block size `block`.
// The row pointers (fixed by the budgets) are uploaded once per budget vector and cached.
std::shared_ptr<const DeviceLayout> select_layout_on_device(const Tensor& qsel, const Tensor& kbar,
                                                            const std::vector<int64_t>& budgets, int64_t sinks,
                                                            bool causal, int64_t block);

// The layout's CSR copied back to the host, heads in order (tests compare it with the host
// selection's).
struct HostCsr {
  int64_t heads = 0, nqb = 0, nkb = 0, block = 0;
  std::vector<int64_t> row_ptr, col_ptr;  // [heads][nb + 1], biased by each head's first entry
  std::vector<int32_t> col_idx, row_idx;
};
HostCsr copy_to_host(const DeviceLayout& layout);

}  // namespace sparrow::attn::cuda
