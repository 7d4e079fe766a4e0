// Device-side view of a block layout and the walks every block-attention kernel makes over it:
//   - a query tile walks its layout ROW (CSR: row_ptr/col_idx) to find the key tiles it sees
//     (forward and dQ);
//   - a key tile walks its layout COLUMN (the transpose: col_ptr/row_idx) to find the query tiles
//     that see it (dK/dV), so dK and dV accumulate in one CTA without atomics.
// A walk is in units of `tile` rows (64 for the tensor-core kernels); a layout block of b rows
// expands to b / tile consecutive tiles. With no layout the walk is dense (causal: the tiles on
// or below the diagonal). Tiles wholly masked by causality (plain positions) are skipped, so a
// layout coarser than the tile never computes the empty upper half of its diagonal block.
//
// The walks are __host__ __device__ so that host code can check them against the CSR.
//
// Causal rule (per element): key j is visible to query i iff key_last[j] ≤ i, where key_last[j]
// is the last position key j summarises (j itself when no key_last array is given).
#pragma once
#include <cstdint>

namespace sparrow::attn::cuda {

struct LayoutView {
  // Offsets into col_idx / row_idx, already biased by each head's start: [nh][nqb + 1] and
  // [nh][nkb + 1]. row_ptr == nullptr: dense.
  const int64_t* row_ptr = nullptr;
  const int32_t* col_idx = nullptr;
  const int64_t* col_ptr = nullptr;
  const int32_t* row_idx = nullptr;
  int nh = 1;  // stored heads: 1 (shared) or H
  int64_t nqb = 0, nkb = 0;
  int block = 64;  // layout block size (dense: the iteration block)
};

struct AttnGeometry {
  int64_t nq = 0, nk = 0;
  int heads = 1;
  int d = 0;
  float scale = 0;       // softmax scale
  double scale_f64 = 0;  // the same, for the f64 kernels
  float scale_log2 = 0;  // scale · log2(e): scores go straight into exp2
  bool causal = false;
  const int32_t* key_last = nullptr;  // [nk] or null (key j ends at position j)
};

__host__ __device__ __forceinline__ int64_t key_end_pos(const AttnGeometry& g, int64_t j) {
  return g.key_last ? static_cast<int64_t>(g.key_last[j]) : j;
}

// Key tiles seen by the query tile [q0, q0 + qrows) of head h.
struct RowWalk {
  const int32_t* cols = nullptr;  // null: dense
  int64_t count = 0;              // tiles to visit (before skipping)
  int tiles_per_block = 1;
  int block = 64;
  int tile = 64;
  int64_t q_last = 0;  // last query row of the tile (clamped to nq − 1)
  int64_t nk = 0;
  bool skip_causal = false;  // plain-position causal: skip tiles starting after q_last

  __host__ __device__ void init(const LayoutView& L, const AttnGeometry& g, int h, int64_t q0, int qrows, int tile_) {
    tile = tile_;
    nk = g.nk;
    q_last = (q0 + qrows < g.nq ? q0 + qrows : g.nq) - 1;
    skip_causal = g.causal && g.key_last == nullptr;
    if (L.row_ptr == nullptr) {
      cols = nullptr;
      block = tile;
      tiles_per_block = 1;
      count = (g.nk + tile - 1) / tile;
      if (skip_causal && count > q_last / tile + 1) count = q_last / tile + 1;
    } else {
      const int lh = L.nh == 1 ? 0 : h;
      const int64_t qb = q0 / L.block;
      const int64_t* rp = L.row_ptr + lh * (L.nqb + 1);
      const int64_t beg = rp[qb], end = rp[qb + 1];
      cols = L.col_idx + beg;
      block = L.block;
      tiles_per_block = L.block / tile;
      count = (end - beg) * tiles_per_block;
    }
  }
  // First key row of tile t, or −1 when the tile is to be skipped.
  __host__ __device__ int64_t start(int64_t t) const {
    int64_t k0 = cols == nullptr
                     ? t * tile
                     : static_cast<int64_t>(cols[t / tiles_per_block]) * block + (t % tiles_per_block) * tile;
    if (k0 >= nk) return -1;
    if (skip_causal && k0 > q_last) return -1;
    return k0;
  }
  // Advances t to the next tile to visit (t itself if it qualifies); count when none is left.
  __host__ __device__ int64_t next(int64_t t, int64_t* k0) const {
    for (; t < count; ++t) {
      int64_t s = start(t);
      if (s >= 0) {
        *k0 = s;
        return t;
      }
    }
    return count;
  }
};

// Query tiles that see the key tile [k0, k0 + tile) of head h.
struct ColWalk {
  const int32_t* rows = nullptr;  // null: dense
  int64_t count = 0;
  int64_t first = 0;  // dense: first query tile to visit
  int tiles_per_block = 1;
  int block = 64;
  int tile = 64;
  int64_t k0 = 0;
  int64_t nq = 0;
  bool skip_causal = false;

  __host__ __device__ void init(const LayoutView& L, const AttnGeometry& g, int h, int64_t k0_, int tile_) {
    tile = tile_;
    k0 = k0_;
    nq = g.nq;
    skip_causal = g.causal && g.key_last == nullptr;
    if (L.row_ptr == nullptr) {
      rows = nullptr;
      block = tile;
      tiles_per_block = 1;
      count = (g.nq + tile - 1) / tile;
      // A query tile [64t, 64t + 63] sees key k0 only when 64t + 63 ≥ k0.
      first = skip_causal ? k0 / tile : 0;
    } else {
      const int lh = L.nh == 1 ? 0 : h;
      const int64_t kb = k0 / L.block;
      const int64_t* cp = L.col_ptr + lh * (L.nkb + 1);
      const int64_t beg = cp[kb], end = cp[kb + 1];
      rows = L.row_idx + beg;
      block = L.block;
      tiles_per_block = L.block / tile;
      count = (end - beg) * tiles_per_block;
      first = 0;
    }
  }
  __host__ __device__ int64_t start(int64_t t) const {
    int64_t q0 = rows == nullptr
                     ? t * tile
                     : static_cast<int64_t>(rows[t / tiles_per_block]) * block + (t % tiles_per_block) * tile;
    if (q0 >= nq) return -1;
    if (skip_causal && q0 + tile - 1 < k0) return -1;
    return q0;
  }
  __host__ __device__ int64_t next(int64_t t, int64_t* q0) const {
    for (; t < count; ++t) {
      int64_t s = start(t);
      if (s >= 0) {
        *q0 = s;
        return t;
      }
    }
    return count;
  }
};

}  // namespace sparrow::attn::cuda
