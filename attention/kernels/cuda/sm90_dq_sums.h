// The sm_90a one-pass backward's f32 dQ sums: their layout, their size and the head groups that
// bound it. Plain C++ (no CUDA), so the host tests check it without a GPU and the trainer's memory
// estimate (block_attention_backward_scratch_bytes) counts what the kernels allocate.
#pragma once
#include <cstdint>
#include <cstdlib>

#include "framework/core/error.h"

namespace sparrow::attn::cuda {

// The one-pass dQ sums: every 64-row tile of dQ transposed (dQᵀ, D columns × 64 rows, the order the
// dK/dV pass's accumulator holds), 64 floats a column with no padding; within a column, row r sits
// at r ^ sm90_dq_sums_swizzle(col). The kernel stages a band in shared memory in this same order
// and adds it with one linear bulk reduce, so the swizzle is what spreads a warp's float2 stores (8
// columns × 4 row pairs) over the banks: column c's rows move by 8·(c mod 4) floats, so 4 of the 8
// columns fall on distinct 8-bank groups (2 wavefronts, the fewest 256 bytes take). It replaces a
// pad of 8 floats a column (12.5 % more sums: bytes held, zeroed, reduce-added and read back).
// XOR by a multiple of 8 keeps every aligned group of 4 (and 2) rows together and in order.
constexpr int kSm90DqSumsRows = 64;
constexpr int sm90_dq_sums_swizzle(int col) { return (col & 3) << 3; }
constexpr int64_t sm90_dq_sums_at(int64_t tile, int d, int col, int row) {
  return (tile * d + col) * kSm90DqSumsRows + (row ^ sm90_dq_sums_swizzle(col));
}
// nq_pad: the query count rounded up to the 64-row tiles.
inline int64_t sm90_dq_sums_floats(int64_t bh, int64_t nq_pad, int64_t d) { return bh * nq_pad * d; }

// The most bytes of sums one launch may take, 2 GiB unless SPARROW_SM90_DQ_SUMS_CAP (bytes) says.
inline double sm90_dq_sums_cap() {
  const char* e = std::getenv("SPARROW_SM90_DQ_SUMS_CAP");
  if (e == nullptr || *e == '\0') return 2.0 * (1 << 30);
  char* end = nullptr;
  const double cap = std::strtod(e, &end);
  SPARROW_CHECK(end != e && *end == '\0' && cap >= 0, "SPARROW_SM90_DQ_SUMS_CAP=", e,
                ": expected bytes (a number >= 0)");
  return cap;
}

// The sums take 4 bytes per element of dQ: 6.4 GB for 2M tokens × 12 heads × D 64, beyond what a
// long-sequence step can spare. The backward therefore runs over groups of g consecutive
// (batch·head) rows, one sums buffer reused in stream order, with g the largest count whose sums
// fit in cap_bytes among those that divide B·H and divide or are a multiple of H (so a group's
// heads are the layout's from one offset on). 0: even one head's sums exceed the cap, and the two
// passes (no sums) serve.
inline int64_t sm90_onepass_group(int64_t bh, int64_t heads, int64_t nq_pad, int64_t d, double cap_bytes) {
  for (int64_t g = bh; g >= 1; --g)
    if (bh % g == 0 && (heads % g == 0 || g % heads == 0) &&
        4.0 * static_cast<double>(sm90_dq_sums_floats(g, nq_pad, d)) <= cap_bytes)
      return g;
  return 0;
}

// Bytes of sums the backward of B·H rows of nq queries at head size d holds at once (0 when the two
// passes serve).
inline double sm90_dq_sums_bytes(int64_t bh, int64_t heads, int64_t nq, int64_t d) {
  const int64_t nq_pad = (nq + kSm90DqSumsRows - 1) / kSm90DqSumsRows * kSm90DqSumsRows;
  return 4.0 * static_cast<double>(
                   sm90_dq_sums_floats(sm90_onepass_group(bh, heads, nq_pad, d, sm90_dq_sums_cap()), nq_pad, d));
}

}  // namespace sparrow::attn::cuda
