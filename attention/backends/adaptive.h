// `adaptive`: content-based block selection (MoBA, arXiv:2502.13189), then exact block-sparse
// attention over the selected blocks.
//
// Selection, per (batch, head) and query block r: q̄_r and k̄_c are the means of the block's
// query / key rows (the ragged last block over its real rows); every key block c the row may
// use (c < nb, causal: c ≤ r) scores q̄_r · k̄_c — under causal masking q̄_{r−1} · k̄_c instead
// (row 0 has no choice to make): the mean over block r's own queries would carry the later
// positions' tokens into the earlier positions' choice of blocks, a leak from the future that
// decoding one token at a time could not reproduce. The previous block's mean, like every key
// block c < r, lies wholly before each position of block r. The row keeps its forced blocks F_r — the
// diagonal and the sinks c < sink_blocks (causal: those ≤ r) — then the best-scoring others
// (ties: the lower block index) until it holds k_r = min(R_r, max(k, |F_r|)) blocks, R_r the
// row's range (nb, causal r + 1). k = top_k when set; else from the sparsity budget like the
// pattern layouts: round((1 − s)·R_r + carry), at least 1, the rounding remainder carried to
// the next row so that the total tracks (1 − s)·Σ R_r (non-causal rows all share R_r and
// would otherwise all round the same way).
//
// Scoring runs in f32 (f64 for f64 inputs; bf16 is widened), with framework ops under
// NoGradGuard — the selection is not differentiable (as in MoBA) — in chunks of query blocks
// so the scores never hold more than a bounded slab of the (nb × nb) grid; the top-k runs on
// the host. On a GPU it runs on the device (kernels/cuda/adaptive_select.h: the same layout, no
// host wait, so the step can be captured in a CUDA graph); SPARROW_ADAPTIVE_SELECT=host keeps it
// on the host (adaptive.cpp). The attention over the selected blocks is exact and differentiable.
//
// The sparsity is cfg.sparsity_at(call.step) (the schedule where it is on); the selection is
// remade every forward anyway, since it depends on q and k.
//
// Batch: the layout differs per (batch, head), so the call folds batch into heads
// ([B, H, N, D] → [1, B·H, N, D], a view for contiguous inputs) and hands the kernel one
// BlockLayout with B·H CSRs (head index b·H + h). Stats count all B·H layouts.
#pragma once
#include <array>
#include <memory>

#include "attention/attention.h"
#include "attention/layout/block_layout.h"
#include "attention/ring/context_parallel.h"

namespace sparrow::attn {

class AdaptiveAttention : public Attention {
 public:
  explicit AdaptiveAttention(const AttentionConfig& cfg);
  Tensor forward(const AttentionCall& call) override;
  AttentionStats stats() const override { return stats_; }
  std::string name() const override { return "adaptive"; }
  bool supports_context_parallel() const override { return true; }
  // Selects from the cached queries and keys of the prefix, then attends (adaptive_decode.cpp).
  Tensor decode(const DecodeCall& call) override;
  // The layout of the last forward: B·H CSRs, head index b·H + h.
  std::shared_ptr<const BlockLayout> last_layout() const { return layout_; }

 private:
  Tensor forward_selected_on_device(const AttentionCall& call, const Tensor& qbar, const Tensor& kbar, double sparsity);

  AttentionConfig cfg_;
  AttentionStats stats_;
  std::shared_ptr<const BlockLayout> layout_;
  RingRunner ring_;  // context parallelism
};

// The query means that score row r's choice: q̄_r, or under causality q̄_{r−1} (row 0: q̄_0, which
// has no choice to make).
Tensor scoring_query_means(const Tensor& qbar, bool causal);

// The per-row block count k_r for nb blocks (see above).
std::vector<int64_t> adaptive_row_budgets(const AdaptiveConfig& ac, double sparsity, int64_t nb, bool causal);

// The selection for q, k [B, H, N, D] (any float dtype and device): one CSR per (batch, head).
BlockLayout select_adaptive_layout(const Tensor& q, const Tensor& k, const AdaptiveConfig& ac, double sparsity,
                                   int64_t block_size, bool causal);
// Its two halves: the block means q̄, k̄ [B, H, nb, D] (f32, or f64 for f64 inputs; no autograd),
// and the selection from them for a sequence of N tokens. Under context parallelism each rank
// pools its own shard and the means of all ranks are gathered (adaptive_context_parallel.cpp).
std::array<Tensor, 2> adaptive_block_means(const Tensor& q, const Tensor& k, int64_t block_size);
BlockLayout select_adaptive_layout_from_means(Tensor qbar, const Tensor& kbar, int64_t N, const AdaptiveConfig& ac,
                                              double sparsity, int64_t block_size, bool causal);
// The whole sequence's q̄, k̄ [B, H, nb, D] from this rank's shards q, k [B, H, local, D] and every
// other rank's (one all-gather over cp.comm: a collective). *gathered_bytes: the all-gather's size.
std::array<Tensor, 2> gather_adaptive_block_means(const Tensor& q, const Tensor& k, const ContextParallel& cp,
                                                  int64_t block_size, int64_t* gathered_bytes = nullptr);

}  // namespace sparrow::attn
