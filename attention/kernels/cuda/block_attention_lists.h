// Per query block-row key lists for the sm_90a block-attention forward: the row's key blocks
// split into PARTIAL blocks (some element masked: the causal diagonal, the ragged key tail),
// walked first with the mask applied, and FULL blocks (every element visible), walked after with
// no mask work. Blocks no element of the row can see (under causality: starting after the row's
// last query; past the keys' end) are dropped.
//
// Plain C++ (no CUDA types) with __host__ __device__ where compiled by nvcc, so the host tests
// check the very code the device list builder runs.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define SPARROW_HD __host__ __device__ __forceinline__
#else
#define SPARROW_HD inline
#endif

namespace sparrow::attn::cuda {

enum class BlockKind : int { kSkip = 0, kPartial = 1, kFull = 2 };

// Query rows [q0, q0 + rows) against keys [k0, k0 + cols), positions plain (key j visible to
// query i iff j ≤ i under causality): kSkip when no element is visible (rows past nq have nothing
// to compute), kFull when every element of the rows below nq is, else kPartial. The sm_90a kernels
// tile unevenly (forward 128 × 128; backward dK/dV 64 query rows × 128 keys, dQ 128 × 64).
SPARROW_HD BlockKind classify_tile(int64_t q0, int64_t rows, int64_t k0, int64_t cols, int64_t nq, int64_t nk,
                                   bool causal) {
  const int64_t q_last = (q0 + rows < nq ? q0 + rows : nq) - 1;
  if (k0 >= nk || q0 >= nq) return BlockKind::kSkip;
  if (causal && k0 > q_last) return BlockKind::kSkip;
  if (k0 + cols > nk || (causal && k0 + cols - 1 > q0)) return BlockKind::kPartial;
  return BlockKind::kFull;
}

// A streamed tile as the sm_90a producer describes it to the consumers, in shared memory beside
// the tile: written before the arrival that fills the stage (release), read after the wait on it
// (acquire). The consumers then make no global loads of the layout on a tile's critical path:
// each was a dependent L2 round trip before the tile's first GEMM could issue (ncu: the dK/dV
// pass's long-scoreboard stalls, bench/HOPPER_NOTES.md). r0: the tile's first row (the dK/dV
// pass: query row; the dQ pass and the forward: key); flags: it needs the mask, it ends the walk.
struct TileNote {
  int32_t r0 = 0, flags = 0;
  static constexpr int32_t kPartial = 1, kLast = 2;
  SPARROW_HD static TileNote of(int32_t r0, BlockKind kind, bool last) {
    return TileNote{r0, (kind == BlockKind::kPartial ? kPartial : 0) | (last ? kLast : 0)};
  }
  SPARROW_HD bool partial() const { return (flags & kPartial) != 0; }
  SPARROW_HD bool last() const { return (flags & kLast) != 0; }
};

// The producer's walk over a column's (or row's) tiles 0 .. tiles − 1: those not skipped, in
// order, each with its note; the next one is found ahead, so that a note can say it is the last.
// kind_of(t), r0_of(t): tile t's kind and first row.
template <class KindOf, class R0Of>
class NoteWalk {
 public:
  SPARROW_HD NoteWalk(int tiles, KindOf kind_of, R0Of r0_of)
      : tiles_(tiles), kind_of_(kind_of), r0_of_(r0_of), t_(next(0)) {}
  SPARROW_HD bool done() const { return t_ >= tiles_; }
  // The current tile's note; the walk moves on to the next tile not skipped.
  SPARROW_HD TileNote take() {
    const int t = t_;
    const BlockKind kind = kind_of_(t);
    t_ = next(t + 1);
    return TileNote::of(r0_of_(t), kind, done());
  }

 private:
  SPARROW_HD int next(int t) const {
    while (t < tiles_ && kind_of_(t) == BlockKind::kSkip) ++t;
    return t;
  }
  int tiles_;
  KindOf kind_of_;
  R0Of r0_of_;
  int t_;
};

// Key block kb (keys [kb·block, kb·block + block)) seen from query block qb.
SPARROW_HD BlockKind classify_key_block(int64_t qb, int64_t kb, int64_t block, int64_t nq, int64_t nk, bool causal) {
  return classify_tile(qb * block, block, kb * block, block, nq, nk, causal);
}

// Writes the row's partial blocks, then its full blocks, into out (room for n entries);
// counts[0] = number of partial blocks, counts[1] = number written in all.
SPARROW_HD void build_row_lists(const int32_t* cols, int64_t n, int64_t qb, int64_t block, int64_t nq, int64_t nk,
                                bool causal, int32_t* out, int32_t* counts) {
  int32_t w = 0;
  for (int64_t t = 0; t < n; ++t)
    if (classify_key_block(qb, cols[t], block, nq, nk, causal) == BlockKind::kPartial) out[w++] = cols[t];
  const int32_t np = w;
  for (int64_t t = 0; t < n; ++t)
    if (classify_key_block(qb, cols[t], block, nq, nk, causal) == BlockKind::kFull) out[w++] = cols[t];
  counts[0] = np;
  counts[1] = w;
}

// The same lists for the dense layout (every key block), computed arithmetically: the partial
// blocks form a suffix [p0, nv) of the visible range [0, nv). Entry i of the walk is block
// i < np ? p0 + i : i − np.
struct DenseRowLists {
  int64_t nv = 0, np = 0, p0 = 0;
  SPARROW_HD DenseRowLists(int64_t qb, int64_t block, int64_t nq, int64_t nk, bool causal) {
    const int64_t nkb = (nk + block - 1) / block;
    const int64_t q0 = qb * block;
    const int64_t q_last = (q0 + block < nq ? q0 + block : nq) - 1;
    nv = causal ? (q_last / block + 1 < nkb ? q_last / block + 1 : nkb) : nkb;
    p0 = nv;
    if (causal) {
      // k0 + block − 1 > q0  ⟺  kb > (q0 − block + 1) / block
      const int64_t first = q0 - block + 1 >= 0 ? (q0 - block + 1) / block + 1 : 0;
      if (first < p0) p0 = first;
    }
    if (nv == nkb && nk % block != 0 && nkb - 1 < p0) p0 = nkb - 1;
    if (p0 < 0) p0 = 0;
    np = nv - p0;
  }
  SPARROW_HD int64_t block_at(int64_t i) const { return i < np ? p0 + i : i - np; }
};

}  // namespace sparrow::attn::cuda
