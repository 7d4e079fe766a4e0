// Adaptive attention under context parallelism: the selection needs the block means q̄, k̄ of
// the whole sequence, while each rank holds a zigzag shard of it (ring_plan.h). Each rank pools
// its own shard — its chunks are runs of whole blocks, so its local blocks are global blocks —
// and one all-gather over the context group gives every rank every block's means: nb·D numbers
// per (batch, head) for q and for k, against N·D for the keys themselves. Every rank then makes
// the same selection from the same means (select_adaptive_layout_from_means), and ring attention
// runs that layout: ring steps whose shards no selected block needs are skipped like any
// layout's.
#include <algorithm>

#include "attention/backends/adaptive.h"
#include "attention/ring/context_parallel.h"
#include "framework/ops/ops.h"

namespace sparrow::attn {

namespace {

// The global blocks of `rank`'s shard, in shard order: [first, last) per range.
std::vector<std::pair<int64_t, int64_t>> shard_blocks(const RingPlan& plan, int rank, int64_t bs) {
  std::vector<std::pair<int64_t, int64_t>> runs;
  for (int64_t c : plan.chunks_of(rank)) {
    const TokenRange r = plan.chunk_range(c);
    if (r.size() > 0) runs.push_back({r.begin / bs, (r.end + bs - 1) / bs});
  }
  return runs;
}

int64_t count(const std::vector<std::pair<int64_t, int64_t>>& runs) {
  int64_t n = 0;
  for (const auto& [a, b] : runs) n += b - a;
  return n;
}

}  // namespace

std::array<Tensor, 2> gather_adaptive_block_means(const Tensor& q, const Tensor& k, const ContextParallel& cp,
                                                  int64_t bs, int64_t* gathered_bytes) {
  const RingPlan plan = cp.dense_plan(false);
  SPARROW_CHECK(plan.chunk % bs == 0, "adaptive attention under context parallelism: block_size ", bs,
                " does not divide the zigzag chunk of ", plan.chunk,
                " tokens (give every layer the block size of "
                "attention.block_size)");
  const int P = cp.comm->size(), me = cp.comm->rank();
  const auto [qm, km] = adaptive_block_means(q, k, bs);  // [B, H, local blocks, D]
  const int64_t B = qm.size(0), H = qm.size(1), D = qm.size(3), nb = (cp.seq_len + bs - 1) / bs;
  SPARROW_CHECK(qm.size(2) == count(shard_blocks(plan, me, bs)),
                "adaptive attention under context parallelism: ", q.size(2),
                " local tokens are not this rank's shard of ", cp.seq_len);
  // Equal pieces for the all-gather: every rank's means padded to the largest shard's blocks.
  int64_t most = 0;
  for (int r = 0; r < P; ++r) most = std::max(most, count(shard_blocks(plan, r, bs)));
  Tensor mine = zeros({2, B, H, most, D}, qm.dtype(), qm.device());
  Tensor mq = mine.slice(0, 0, 1).slice(3, 0, qm.size(2)), mk = mine.slice(0, 1, 2).slice(3, 0, km.size(2));
  copy_(mq, qm.reshape({1, B, H, qm.size(2), D}));
  copy_(mk, km.reshape({1, B, H, km.size(2), D}));
  Tensor all = empty({int64_t(P) * 2 * B * H * most * D}, qm.dtype(), qm.device());
  cp.comm->all_gather(mine.reshape({-1}), all)->wait();
  if (gathered_bytes) *gathered_bytes = static_cast<int64_t>(all.nbytes());
  all = all.reshape({P, 2, B, H, most, D});

  // Each rank's runs of blocks to their global places.
  Tensor qbar = empty({B, H, nb, D}, qm.dtype(), qm.device()), kbar = empty({B, H, nb, D}, qm.dtype(), qm.device());
  for (int r = 0; r < P; ++r) {
    int64_t at = 0;
    for (const auto& [first, last] : shard_blocks(plan, r, bs)) {
      const Tensor piece = all.slice(0, r, r + 1).slice(4, at, at + (last - first));
      Tensor qdst = qbar.slice(2, first, last), kdst = kbar.slice(2, first, last);
      copy_(qdst, piece.slice(1, 0, 1).reshape({B, H, last - first, D}));
      copy_(kdst, piece.slice(1, 1, 2).reshape({B, H, last - first, D}));
      at += last - first;
    }
  }
  return {qbar, kbar};
}

}  // namespace sparrow::attn
