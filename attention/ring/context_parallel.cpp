#include "attention/ring/context_parallel.h"

namespace sparrow::attn {

RingPlan ContextParallel::dense_plan(bool causal) const {
  SPARROW_CHECK(comm, "context parallel: no communicator");
  return make_ring_plan(seq_len, comm->size(), block_size, causal, nullptr);
}

std::vector<TokenRange> ContextParallel::local_ranges() const {
  const RingPlan p = dense_plan(false);
  std::vector<TokenRange> runs;
  for (int64_t c : p.chunks_of(comm->rank()))
    if (p.chunk_range(c).size() > 0) runs.push_back(p.chunk_range(c));
  return runs;
}

Tensor RingRunner::run(const AttentionCall& call, std::shared_ptr<const BlockLayout> layout, double scale,
                       const RingLocalKeys& local) {
  const ContextParallel& cp = *call.context;
  const int P = cp.comm->size();
  const int64_t block = layout ? layout->block_size : cp.block_size;
  const auto key = std::make_tuple(layout.get(), cp.seq_len, P, block, call.causal);
  auto it = plans_.find(key);
  if (it == plans_.end()) {
    if (plans_.size() >= 8) plans_.clear();  // a schedule walks through layouts: keep the recent few
    auto plan = std::make_shared<const RingPlan>(make_ring_plan(cp.seq_len, P, block, call.causal, layout.get()));
    it = plans_.emplace(key, Entry{layout, plan}).first;
  }
  RingAttentionArgs a;
  a.comm = cp.comm;
  a.plan = it->second.plan;
  a.layout = layout;
  a.scale = scale;
  a.local = local;
  return ring_attention(call.q, call.k, call.v, a, &last_);
}

void RingRunner::add_to(AttentionStats& s) const {
  s.ring_hops_computed = last_.hops_computed;
  s.ring_hops_idle = last_.hops_idle;
  s.ring_bytes_sent = last_.bytes_sent;
  s.ring_bytes_skipped = last_.bytes_not_sent;
}

}  // namespace sparrow::attn
