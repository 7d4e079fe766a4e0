// `dense`: exact softmax attention over every key (causal: every key up to the query), through
// the block kernel with no layout — O(N·D) memory, never the N×N matrix.
#pragma once
#include "attention/attention.h"
#include "attention/ring/context_parallel.h"

namespace sparrow::attn {

class DenseAttention : public Attention {
 public:
  explicit DenseAttention(const AttentionConfig& cfg);
  Tensor forward(const AttentionCall& call) override;
  AttentionStats stats() const override { return stats_; }
  std::string name() const override { return "dense"; }
  bool supports_context_parallel() const override { return true; }
  // Every cached key up to the query (dense_decode.cpp).
  Tensor decode(const DecodeCall& call) override;

 private:
  AttentionConfig cfg_;
  AttentionStats stats_;
  RingRunner ring_;  // context parallelism
};

}  // namespace sparrow::attn
