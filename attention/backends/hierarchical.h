// `hierarchical`: fine keys/values plus coarse levels of pooled summaries, all in ONE softmax
// (H-Transformer-1D, arXiv:2107.11906; NSA's compressed branch, arXiv:2502.11089).
//
// Summaries. Level l ≥ 1 has one summary token per P^l consecutive tokens (P = pool): its key
// and value are the means of the fine keys/values it covers (the last token of a level covers
// only the real tokens left: a mean over those). So a level-l BLOCK of b summary tokens pools P
// blocks of level l−1, and covers the P^l fine blocks [c·P^l, (c+1)·P^l) — the blocks of all
// levels nest, which is what lets a block layout express an exact multi-scale partition.
// Each summary is one key whose key_last is the last position it covers.
//
// Keys. K' = [fine keys | level-1 summaries | level-2 summaries | …] along N; every segment
// starts at a block boundary (a ragged segment is padded with zero keys that are never
// visible: key_last = N), so the summaries of a level form key blocks of the same size b.
// Levels whose single block would cover the whole sequence are dropped: such a block overlaps
// every query's window and could never be listed.
//
// What query block r sees (the H-matrix partition, at block granularity). The window
// W_r = fine blocks [r − w, r] (causal) or [r − w, r + w] (not), clipped to the sequence,
// w = fine_window. Over the tree of blocks (roots: the top level's blocks; children of a
// level-l block: the level-(l−1) blocks it covers), a block is listed iff it is disjoint from
// W_r and its parent intersects W_r (or it is a root), or it is a fine block inside W_r.
// Under causal masking, blocks wholly after r are not listed. So:
//   - the fine blocks of W_r, widened to the level-1 block boundary around it (the partly
//     covered level-1 block(s) are opened into their fine blocks);
//   - at each level l < L, the at most P−1 level-l blocks beside that, inside the level-(l+1)
//     block(s) that W_r touches; at the top level every block clear of W_r.
// Every position (causal: every earlier position, and the query block's own keys j ≤ i per
// element) is covered exactly once, by the coarsest block that does not overlap W_r; a summary
// is listed only when wholly before the window (causal), so the kernel's key_last ≤ i rule
// never hides part of a listed summary. The rule is the same for every query of a block: the
// granularity costs only the widening of the fine window to level-1 block boundaries.
//
// The kernel is always called with causal masking on: for a non-causal call every real key
// gets key_last = 0 (seen by all), the padding key_last = N (seen by none).
#pragma once
#include <memory>
#include <vector>

#include "attention/attention.h"
#include "attention/layout/block_layout.h"
#include "attention/ring/context_parallel.h"

namespace sparrow::attn {

// The concatenated key sequence of one length.
struct HierarchicalGeometry {
  int64_t seq_len = 0, block_size = 0, pool = 0;
  int64_t levels = 0;                // levels used (≤ configured)
  int64_t fine_blocks = 0;           // nb = ceil(N / b)
  std::vector<int64_t> group;        // group[l]: tokens one level-l key covers = P^l (group[0] = 1)
  std::vector<int64_t> tokens;       // tokens[l] = ceil(N / group[l])
  std::vector<int64_t> blocks;       // blocks[l] = ceil(tokens[l] / b)
  std::vector<int64_t> first_block;  // level l's segment starts at key block first_block[l]
  int64_t key_len = 0;               // Nk: segments padded to whole blocks, except the last
};

HierarchicalGeometry hierarchical_geometry(const HierarchicalConfig& hc, int64_t seq_len, int64_t block_size);
// key_last of every key of K' (see above; non-causal: 0 for real keys).
std::vector<int64_t> hierarchical_key_last(const HierarchicalGeometry& g, bool causal);
// The layout over (query blocks) × (key blocks of K'), one CSR shared by all heads.
BlockLayout build_hierarchical_layout(const HierarchicalConfig& hc, const HierarchicalGeometry& g, bool causal);
// x [B, H, N, D] → K' [B, H, Nk, D]: x, then each level's means, built from framework ops
// (slice, reshape, mean, concat), so gradients flow back to x through autograd.
Tensor with_summaries(const Tensor& x, const HierarchicalGeometry& g);

class HierarchicalAttention : public Attention {
 public:
  explicit HierarchicalAttention(const AttentionConfig& cfg);
  Tensor forward(const AttentionCall& call) override;
  AttentionStats stats() const override { return stats_; }
  std::string name() const override { return "hierarchical"; }
  bool supports_context_parallel() const override { return true; }
  // The query's row of the layout at seq_len over the fine keys of the cache and the summaries
  // of its complete groups (hierarchical_decode.cpp).
  Tensor decode(const DecodeCall& call) override;
  std::shared_ptr<const BlockLayout> last_layout() const { return layout_; }
  // Builds geometry, layout and key_last for (N, causal) unless they are the ones held.
  void prepare(int64_t N, bool causal);
  const HierarchicalGeometry& last_geometry() const { return geo_; }

 private:
  // Under context parallelism (hierarchical_context_parallel.cpp): the fine keys round the ring,
  // the summaries built from every rank's partial sums and attended locally.
  Tensor forward_context_parallel(const AttentionCall& call);
  void prepare_context_parallel();

  AttentionConfig cfg_;
  AttentionStats stats_;
  // Built once per (length, masking) and kept while those do not change.
  HierarchicalGeometry geo_;
  std::shared_ptr<const BlockLayout> layout_;
  std::vector<int64_t> key_last_;
  bool layout_causal_ = false;
  // Context parallel: the layout's fine and summary columns apart, and the summaries' key_last.
  std::shared_ptr<const BlockLayout> split_from_, fine_layout_, summary_layout_;
  std::vector<int64_t> summary_key_last_;
  RingRunner ring_;
  int64_t collective_bytes_ = 0;  // the last forward's all-reduce of partial sums
};

}  // namespace sparrow::attn
