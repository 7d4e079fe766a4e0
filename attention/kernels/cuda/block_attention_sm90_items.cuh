// The work items of the sm_90a block-attention kernels and the plan that orders them (plain CUDA,
// no CUTLASS: block_attention_sm90_plan.cu makes the plan, the kernels read it):
//   - forward: a query block-row of one (batch, head), walked over its key blocks (Walk);
//   - backward dK/dV pass: a key block's column of one (batch, head), walked over the query blocks
//     that see it (ColumnBlocks); the dQ pass walks rows (RowBlocks).
// A plan entry is an item and a range [first, end) of its walk: the whole walk, or one chunk of a
// long one (block_attention_sm90.h, Sm90Split).
#pragma once
#include <cstdint>

#include "attention/kernels/cuda/block_attention_lists.h"
#include "attention/kernels/cuda/block_attention_walk.cuh"

namespace sparrow::attn::cuda {

// Key block kb's column: the query blocks that see it (the layout's transpose), or every block.
struct ColumnBlocks {
  const int32_t* rows = nullptr;  // null: dense, blocks first .. first + n − 1
  int n = 0, first = 0;
  __device__ int at(int i) const { return rows != nullptr ? rows[i] : first + i; }
  // The sub-walk [begin, end) of this one.
  __device__ ColumnBlocks range(int begin, int end) const {
    ColumnBlocks c = *this;
    if (rows != nullptr)
      c.rows += begin;
    else
      c.first += begin;
    c.n = end - begin;
    return c;
  }
};
__device__ inline ColumnBlocks column_blocks(const LayoutView& L, int h, int kb, int nqb, bool causal) {
  ColumnBlocks c;
  if (L.row_ptr == nullptr) {
    c.first = causal ? kb : 0;  // under causality query block qb sees key block kb only if qb ≥ kb
    c.n = nqb > c.first ? nqb - c.first : 0;
  } else {
    const int lh = L.nh == 1 ? 0 : h;
    const int64_t* cp = L.col_ptr + static_cast<int64_t>(lh) * (L.nkb + 1);
    c.rows = L.row_idx + cp[kb];
    c.n = static_cast<int>(cp[kb + 1] - cp[kb]);
  }
  return c;
}

// Query block qb's row: the key blocks it sees, or every block (up to the diagonal if causal).
struct RowBlocks {
  const int32_t* cols = nullptr;  // null: dense, blocks 0 .. n − 1
  int n = 0;
  __device__ int at(int i) const { return cols != nullptr ? cols[i] : i; }
};
__device__ inline RowBlocks row_blocks(const LayoutView& L, int h, int qb, int nkb, bool causal) {
  RowBlocks r;
  if (L.row_ptr == nullptr) {
    r.n = causal && qb + 1 < nkb ? qb + 1 : nkb;
  } else {
    const int lh = L.nh == 1 ? 0 : h;
    const int64_t* rp = L.row_ptr + static_cast<int64_t>(lh) * (L.nqb + 1);
    r.cols = L.col_idx + rp[qb];
    r.n = static_cast<int>(rp[qb + 1] - rp[qb]);
  }
  return r;
}

// The forward's walk of a query block-row: its key blocks, partial ones first (the lists of
// sm90_build_lists, block_attention_lists.h), blocks no row element sees left out.
struct Walk {
  const int32_t* list = nullptr;  // null: dense
  int np = 0, nv = 0, p0 = 0;
  __device__ int block(int i) const { return list != nullptr ? list[i] : (i < np ? p0 + i : i - np); }
  // The walk from position `first` on, renumbered from 0 (np may go negative: no partial left).
  // Dense: position first + i is p0 + first + i while below np, else first + i − np.
  __device__ Walk from(int first) const {
    Walk w = *this;
    if (list != nullptr) w.list += first;
    w.p0 += first;
    w.np -= first;
    w.nv -= first;
    return w;
  }
};
__device__ inline Walk row_walk(const LayoutView& L, const int32_t* lists, const int32_t* counts, int h, int m_block,
                                int block, int nq, int nk, bool causal) {
  Walk w;
  if (L.row_ptr == nullptr) {
    DenseRowLists d(m_block, block, nq, nk, causal);
    w.np = static_cast<int>(d.np);
    w.nv = static_cast<int>(d.nv);
    w.p0 = static_cast<int>(d.p0);
  } else {
    const int lh = L.nh == 1 ? 0 : h;
    const int64_t row = static_cast<int64_t>(lh) * L.nqb + m_block;
    if (lists != nullptr) w.list = lists + L.row_ptr[lh * (L.nqb + 1) + m_block];
    w.np = counts[2 * row];
    w.nv = counts[2 * row + 1];
  }
  return w;
}

// A plan's ints (Sm90Split::entries), for `items` items and `slots` chunk slots: the entries, 4
// ints each, items + slots of them (room for every chunk); the items' lengths in blocks; the first
// slot of each split item, in item order; and the count of split items.
__host__ __device__ inline int64_t plan_lengths_at(int64_t items, int slots) { return 4 * (items + slots); }
__host__ __device__ inline int64_t plan_firsts_at(int64_t items, int slots) {
  return plan_lengths_at(items, slots) + (items + 3) / 4 * 4;
}
__host__ __device__ inline int64_t plan_splits_at(int64_t items, int slots) {
  return plan_firsts_at(items, slots) + slots;
}
__host__ __device__ inline int64_t plan_ints(int64_t items, int slots) { return plan_splits_at(items, slots) + 4; }

// One entry of a plan: item `item`'s walk positions [first, end); slot ≥ 0: a chunk of a split
// item, whose partial result goes to chunk slot `slot` for the combine; −1: the whole walk, stored
// straight. item −1: past the plan's last entry.
struct PlanEntry {
  int item, first, end, slot;
};
__device__ inline PlanEntry plan_entry(const int32_t* entries, int n) {
  const int4 e = reinterpret_cast<const int4*>(entries)[n];
  return PlanEntry{e.x, e.y, e.z, e.w};
}

// A split item of a plan as its combine sees it: chunks at slots first_slot .. first_slot +
// chunks − 1 (the plan puts them at consecutive entries, entry index = slot; every chunk but the
// last as long as the first).
struct SplitItem {
  int item, first_slot, chunks;
};
__device__ inline int split_items(const int32_t* plan, int items, int slots) {
  return plan[plan_splits_at(items, slots)];
}
__device__ inline SplitItem split_item(const int32_t* plan, int items, int slots, int i) {
  const int s = plan[plan_firsts_at(items, slots) + i];
  const PlanEntry e = plan_entry(plan, s);
  const int length = plan[plan_lengths_at(items, slots) + e.item], chunk = e.end;
  return SplitItem{e.item, s, (length + chunk - 1) / chunk};
}
// A combine kernel's units: 16 rows of a split item each, taken by its CTAs in turn.
constexpr int kCombineRows = 16;

}  // namespace sparrow::attn::cuda
