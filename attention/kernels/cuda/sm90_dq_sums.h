// The sm_90a one-pass backward's f32 dQ sums: their size and the head groups that bound it. Plain
// C++ (no CUDA), so the host tests check the grouping without a GPU.
#pragma once
#include <cstdint>

namespace sparrow::attn::cuda {

// The one-pass dQ sums: every 64-row tile of dQ transposed, each column padded from 64 to 72 floats
// (block_attention_sm90_bwd.cu, dq_sums_at).
constexpr int kSm90DqSumsPitch = 72;
inline int64_t sm90_dq_sums_floats(int64_t bh, int64_t nq_pad, int64_t d) {
  return bh * (nq_pad / 64) * d * kSm90DqSumsPitch;
}

// The one pass's sums take 4.5 bytes per element of dQ: 7.2 GB for 2M tokens × 12 heads × D 64,
// beyond what a long-sequence step can spare. The backward therefore runs over groups of g
// consecutive (batch·head) rows, one sums buffer reused in stream order, with g the largest count
// whose sums fit in cap_bytes among those that divide B·H and divide or are a multiple of H (so a
// group's heads are the layout's from one offset on). 0: even one head's sums exceed the cap, and
// the two passes (no sums) serve.
inline int64_t sm90_onepass_group(int64_t bh, int64_t heads, int64_t nq_pad, int64_t d, double cap_bytes) {
  for (int64_t g = bh; g >= 1; --g)
    if (bh % g == 0 && (heads % g == 0 || g % heads == 0) &&
        4.0 * static_cast<double>(sm90_dq_sums_floats(g, nq_pad, d)) <= cap_bytes)
      return g;
  return 0;
}

}  // namespace sparrow::attn::cuda
