// Block-sparsity patterns: per query block ("row"), each named pattern proposes key blocks
// ("candidates") in priority order; the row builder takes their union, either exactly as
// configured (sparsity 0) or up to a per-row block budget set by a target sparsity.
//
// Geometry. nb = ceil(N / block) query and key blocks (the last may be ragged: the layout is at
// block level, the kernel masks the tail). Row r may use key blocks [0, R_r) where R_r = nb
// (non-causal) or r + 1 (causal: never a block above the diagonal). dense_r = R_r, and the dense
// attention computes Σ_r dense_r = nb² or nb(nb+1)/2 pairs. Sparsity = 1 − active / dense.
//
// Patterns (distances d = r − c in blocks; "both sides" means ±d, causal keeps d ≥ 0):
//   local(w)         |d| ≤ w (causal: 0 ≤ d ≤ w).                          Longformer sliding window.
//   dilated(w, ρ…)   d = ±k·ρ for k = 1..w, for each rate ρ.                Longformer dilated window.
//   strided(l)       |d| < l, or d a multiple of l (any distance).          Sparse Transformer (1904.10509) "strided".
//   fixed(l)         c in r's chunk ⌊c/l⌋ = ⌊r/l⌋, or c ≡ l−1 (mod l): the last block of every
//                    chunk is its summary column (causal: of every earlier chunk).  Sparse Transformer "fixed".
//   global(g)        columns c < g in every row (sinks), and rows r < g see every key (dense).
//   random(k)        k blocks per row drawn uniformly without replacement from the row's range,
//                    skipping blocks the other patterns already gave it (BigBird); a pure function
//                    of (seed, head, row).
//   bigbird          local(window) ∪ global(global_blocks) ∪ random(random_blocks)  (2007.14062).
// The diagonal is always active: every query sees its own block (a causal row's first token
// would otherwise see nothing).
//
// Target sparsity s > 0: row r's budget is max(floor_r, round((1 − s)·dense_r)), floor_r = the
// diagonal plus the sink columns (a global row's floor is its whole range). The rounding carries
// its remainder to the next row (error diffusion), so where no floor binds Σ_r budget_r is within
// half a block of Σ_r (1 − s)·dense_r in total, not half a block per row — non-causal rows all
// have the same dense_r and would otherwise all round the same way. The row takes the
// diagonal, the sinks, then the patterns' candidates round-robin — first the configured ones
// (phase 1: local nearest first, dilated by k, strided window/multiples interleaved, random draws),
// then each pattern's growth (phase 2: wider window, more multiples, more random draws), then a
// nearest-first fill should every pattern run dry — until the budget is met exactly. So the
// sparsity setting is always honoured: active = Σ_r budget_r, within one block per row of
// Σ_r (1 − s)·dense_r unless the floor binds (then BlockLayout::floor_note says so).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attention/attention_config.h"
#include "attention/layout/block_layout.h"

namespace sparrow::attn {

// The named patterns after expanding aliases (bigbird → local + global + random).
struct PatternSet {
  bool local = false, dilated = false, strided = false, fixed = false, global = false, random = false;
};
// Throws sparrow::Error naming the unknown pattern and the known names; also validates the
// parameters the chosen patterns read (window ≥ 0, stride ≥ 1, rates ≥ 1, …).
PatternSet expand_patterns(const PatternConfig& p);
const std::vector<std::string>& known_pattern_names();

// One pattern's candidates for one row, in priority order (duplicates allowed; the builder
// skips blocks it already holds).
class CandidateStream {
 public:
  virtual ~CandidateStream() = default;
  // The next candidate key block, or −1. configured_only: only candidates of the pattern as
  // configured (−1 once those are used up); otherwise the growth beyond it as well.
  virtual int32_t next(bool configured_only) = 0;
  // The builder took the candidate just returned as a new block (random counts its quota so).
  virtual void accepted() {}
};

struct RowGeometry {
  int64_t row = 0;  // query block
  int64_t nb = 0;   // blocks
  bool causal = false;
  int64_t range() const { return causal ? row + 1 : nb; }  // R_r: key blocks [0, R_r) allowed
};

// The streams for one row, in round-robin order (local, dilated, strided, fixed, random);
// global is not a stream: it is the floor (sinks) and dense rows.
std::vector<std::unique_ptr<CandidateStream>> make_streams(const PatternSet& set, const PatternConfig& p,
                                                           const RowGeometry& g, int64_t head);

// The seed of the random pattern's draws for (seed, head, row): a SplitMix64 chain, so rows
// and heads get independent Philox streams.
uint64_t random_row_seed(uint64_t seed, int64_t head, int64_t row);

// floor_r: the diagonal plus the sink columns; a global query row's whole range.
int64_t row_floor(const PatternSet& set, const PatternConfig& p, const RowGeometry& g);
// Every row's budget at target sparsity s in (0, 1): max(floor_r, round((1 − s)·dense_r + carry)),
// the carry being the rounding remainder of the rows before that were not floor-bound.
std::vector<int64_t> row_budgets(const PatternSet& set, const PatternConfig& p, int64_t nb, bool causal,
                                 double sparsity);

// Reusable per-thread scratch for build_row: a stamp per key block (O(nb), never O(nb²)).
struct RowScratch {
  std::vector<int64_t> stamp;
  int64_t current = 0;
};

// The active key blocks of one row, ascending. budget < 0: the configured union (sparsity 0);
// otherwise exactly `budget` blocks (floor_r ≤ budget ≤ dense_r).
std::vector<int32_t> build_row(const PatternSet& set, const PatternConfig& p, const RowGeometry& g, int64_t head,
                               int64_t budget, RowScratch& scratch);

// "bigbird(window=3, global=1, random=2, seed=0) @ sparsity 0.95" and the like.
std::string describe_layout(const AttentionConfig& cfg, bool causal);

// ceil(seq_len / block_size) without the overflow of (seq_len + block_size − 1) / block_size.
int64_t layout_blocks(int64_t seq_len, int64_t block_size);

// An upper bound on the (query block, key block) pairs build_layout would store over all its
// stored heads, computed in O(rates) before anything is built, so a caller can refuse a layout
// too large to hold. A double: the bound may exceed int64 for absurd inputs.
double estimate_active_blocks(const AttentionConfig& cfg, int64_t seq_len, int64_t num_heads, bool causal);

// Builds the layout (uncached; get_layout caches it). One shared CSR unless pattern.per_head
// and the random pattern is in play (the only part that differs by head).
BlockLayout build_layout(const AttentionConfig& cfg, int64_t seq_len, int64_t num_heads, bool causal);

}  // namespace sparrow::attn
