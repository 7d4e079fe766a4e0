// `block_sparse`: the named patterns of cfg.pattern at the target sparsity (get_layout, cached
// per length/heads/masking), computed by the block kernel over the layout's active blocks only.
// The target is cfg.sparsity_at(call.step): under a schedule each new value costs one layout
// build (the cache keys on the sparsity's bits), a value seen before costs a lookup.
#pragma once
#include <memory>

#include "attention/attention.h"
#include "attention/layout/block_layout.h"
#include "attention/ring/context_parallel.h"

namespace sparrow::attn {

class BlockSparseAttention : public Attention {
 public:
  explicit BlockSparseAttention(const AttentionConfig& cfg);
  Tensor forward(const AttentionCall& call) override;
  AttentionStats stats() const override { return stats_; }
  std::string name() const override { return "block_sparse"; }
  bool supports_context_parallel() const override { return true; }
  // The query's row of the layout at seq_len and the current sparsity (block_sparse_decode.cpp).
  Tensor decode(const DecodeCall& call) override;
  // The layout of the last forward (null before the first).
  std::shared_ptr<const BlockLayout> last_layout() const { return layout_; }

 private:
  AttentionConfig cfg_;
  AttentionConfig at_target_;  // cfg_ with `sparsity` set to the last forward's target (the layout key)
  AttentionStats stats_;
  RingRunner ring_;  // context parallelism
  std::shared_ptr<const BlockLayout> layout_;
};

}  // namespace sparrow::attn
