// Context parallelism as an attention layer sees it. Under `dist.context_parallel: P` each of P
// ranks holds a zigzag shard of every sequence (ring_plan.h) through the whole model; only
// attention needs the other shards, and a backend reaches them through RingRunner, which runs
// ring attention over the backend's own layout for the whole sequence.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "attention/attention.h"
#include "attention/ring/ring_attention.h"

namespace sparrow::attn {

struct ContextParallel {
  dist::Communicator* comm = nullptr;  // the ranks that share one sequence
  int64_t seq_len = 0;                 // the whole sequence's length
  int64_t block_size = 64;             // the zigzag chunks' granularity (the layouts' block size)
  // This rank's runs of token positions in the whole sequence, in shard order (RoPE reads them).
  std::vector<TokenRange> local_ranges() const;
  RingPlan dense_plan(bool causal) const;
};

// One per backend instance: ring attention over `layout` (null: dense) with the plan cached per
// layout, and the last call's exchange counts for the trainer's log.
class RingRunner {
 public:
  // local: keys every rank holds whole, attended besides the sequence's (ring_attention.h).
  Tensor run(const AttentionCall& call, std::shared_ptr<const BlockLayout> layout, double scale,
             const RingLocalKeys& local = {});
  const RingStats& last() const { return last_; }
  // Adds the last call's ring counts to a backend's stats.
  void add_to(AttentionStats& s) const;

 private:
  // Keyed by the layout's address: each entry holds its layout, so the address stays its own.
  struct Entry {
    std::shared_ptr<const BlockLayout> layout;
    std::shared_ptr<const RingPlan> plan;
  };
  std::map<std::tuple<const BlockLayout*, int64_t, int, int64_t, bool>, Entry> plans_;
  RingStats last_;
};

}  // namespace sparrow::attn
