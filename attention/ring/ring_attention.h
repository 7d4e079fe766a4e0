// Ring attention: exact block attention over a sequence split across ranks (attention/ring/
// ring_plan.h), with key/value shards travelling the ring while each rank computes on the shard
// it holds.
//
// Forward, on rank r: its query chunks stay; at step h it holds the keys/values of rank r−h
// (travelling forward) and r+h (travelling backward) where the plan sends them that far,
// computes the partial attention of each (query chunk, key chunk) pair the layout leaves
// non-empty, and merges it into its running (O, LSE) by log-sum-exp (kernels/lse_merge.h) — one
// softmax over every key the query sees. The next step's exchange is posted before the compute,
// so it overlaps it.
// Backward: the shards travel the same paths again with f32 dK/dV accumulators; each rank adds
// its share (P = exp(S − LSE) with the merged LSE, Di from the merged O) and passes them on; the
// last rank on a path sends the accumulators straight back to the origin. dQ stays local.
// Every rank must call it with the same plan, in the same order (it is a collective).
#pragma once
#include <memory>
#include <vector>

#include "attention/ring/ring_plan.h"
#include "framework/core/tensor.h"
#include "framework/dist/communicator.h"

namespace sparrow::attn {

// Keys that every rank holds whole (hierarchical attention's pooled summaries): they never
// travel; each rank's queries attend to them at the local step, inside the same softmax as the
// sequence's keys (merged by LSE like a visiting shard), and their gradients stay on the rank
// (each rank's share: the caller sums them over ranks, e.g. by dist::sum_over_ranks's backward).
struct RingLocalKeys {
  Tensor k, v;                                // [B, H, Nl, D], the same on every rank
  std::shared_ptr<const BlockLayout> layout;  // the whole sequence's query blocks × these keys' blocks
  std::vector<int64_t> key_last;              // per key, the last position it covers (block_attention.h):
                                              // the causal rule; a key of key_last ≥ N is never seen
};

struct RingAttentionArgs {
  dist::Communicator* comm = nullptr;
  std::shared_ptr<const RingPlan> plan;
  std::shared_ptr<const BlockLayout> layout;  // the whole sequence's layout; null: dense
  double scale = 0.0;                         // 0: 1/sqrt(D)
  RingLocalKeys local;                        // none when local.k is undefined
};

// What one call exchanged and computed on this rank (for logs and the cost model).
struct RingStats {
  int64_t hops_computed = 0, hops_idle = 0;  // of the P−1 visiting shards, per pass
  int64_t bytes_sent = 0, bytes_not_sent = 0;
};

// q, k, v: this rank's shard [B, H, plan.local_len(rank), D] (chunks in plan order: zigzag_shard).
// Returns this rank's O, recorded for autograd (the backward is collective too).
Tensor ring_attention(const Tensor& q, const Tensor& k, const Tensor& v, const RingAttentionArgs& args,
                      RingStats* stats = nullptr);

// x [B, H, N, ...] → rank's shard [B, H, local_len, ...] (a copy), and back from all ranks' shards.
Tensor zigzag_shard(const Tensor& x, const RingPlan& plan, int rank);
Tensor zigzag_unshard(const std::vector<Tensor>& shards, const RingPlan& plan);

}  // namespace sparrow::attn
