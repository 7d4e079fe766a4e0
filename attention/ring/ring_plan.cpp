#include "attention/ring/ring_plan.h"

#include <algorithm>

#include "framework/core/error.h"

namespace sparrow::attn {

TokenRange RingPlan::chunk_range(int64_t c) const {
  const int64_t b = std::min(c * chunk, seq_len), e = std::min((c + 1) * chunk, seq_len);
  return {b, e};
}

int64_t RingPlan::local_len(int rank) const {
  int64_t n = 0;
  for (int64_t c : chunks_of(rank)) n += chunk_range(c).size();
  return n;
}

int64_t RingPlan::hops_sent() const {
  int64_t n = 0;
  for (int o = 0; o < ranks; ++o) n += reach_fwd[o] + reach_bwd[o];
  return n;
}

int RingPlan::direction(int rank, int origin) const {
  const int fwd = (rank - origin + ranks) % ranks;  // hops forward from origin to rank
  if (fwd == 0) return 0;
  if (fwd <= reach_fwd[origin]) return 1;
  if (ranks - fwd <= reach_bwd[origin]) return -1;
  return 0;
}

int64_t RingPlan::hops_skipped() const { return int64_t(ranks) * (ranks - 1) - hops_sent(); }

std::shared_ptr<const BlockLayout> chunk_layout(const BlockLayout& L, const RingPlan& plan, int64_t cq, int64_t ck) {
  return sub_layout(L, plan.chunk_range(cq), plan.chunk_range(ck), L.causal && cq == ck,
                    " [ring chunk " + std::to_string(cq) + "×" + std::to_string(ck) + "]");
}

std::shared_ptr<const BlockLayout> sub_layout(const BlockLayout& L, TokenRange q, TokenRange k, bool causal,
                                              const std::string& tag) {
  if (q.size() == 0 || k.size() == 0) return nullptr;
  const int64_t b = L.block_size;
  SPARROW_CHECK(q.begin % b == 0 && k.begin % b == 0, "sub_layout: ranges [", q.begin, ", ", q.end, ") × [", k.begin,
                ", ", k.end, ") do not start on blocks of ", b);
  const int64_t qb0 = q.begin / b, qb1 = (q.end + b - 1) / b, kb0 = k.begin / b, kb1 = (k.end + b - 1) / b;
  auto sub = std::make_shared<BlockLayout>();
  sub->seq_len = q.size();
  sub->key_len = k.size();
  sub->block_size = b;
  sub->num_q_blocks = qb1 - qb0;
  sub->num_k_blocks = kb1 - kb0;
  sub->causal = causal;
  sub->description = L.description + tag;
  bool any = false;
  for (const BlockCSR& c : L.heads) {
    BlockCSR s;
    s.row_ptr.assign(1, 0);
    for (int64_t r = qb0; r < qb1; ++r) {
      // col_idx is ascending within a row: the chunk's key blocks are one contiguous run.
      const auto first = c.col_idx.begin() + c.row_ptr[r], last = c.col_idx.begin() + c.row_ptr[r + 1];
      for (auto it = std::lower_bound(first, last, int32_t(kb0)); it != last && *it < kb1; ++it)
        s.col_idx.push_back(static_cast<int32_t>(*it - kb0));
      s.row_ptr.push_back(static_cast<int64_t>(s.col_idx.size()));
    }
    any = any || s.nnz() > 0;
    s.build_transpose(sub->num_k_blocks);
    sub->heads.push_back(std::move(s));
  }
  if (!any) return nullptr;
  return sub;
}

RingPlan make_ring_plan(int64_t seq_len, int ranks, int64_t block_size, bool causal, const BlockLayout* layout) {
  SPARROW_CHECK(ranks >= 1, "ring attention: ", ranks, " ranks");
  SPARROW_CHECK(block_size > 0, "ring attention: block size ", block_size);
  SPARROW_CHECK(seq_len >= 1, "ring attention: sequence length ", seq_len);
  if (layout)
    SPARROW_CHECK(layout->seq_len == seq_len && (layout->key_len == 0 || layout->key_len == seq_len) &&
                      layout->block_size == block_size,
                  "ring attention: the layout is for ", layout->seq_len, " tokens at block ", layout->block_size,
                  " (keys ", layout->key_len, "), the sequence has ", seq_len, " at block ", block_size,
                  "; ring attention splits plain keys only");
  RingPlan p;
  p.seq_len = seq_len;
  p.block_size = block_size;
  p.ranks = ranks;
  p.causal = causal;
  const int64_t chunks = 2 * int64_t(ranks), blocks = (seq_len + block_size - 1) / block_size;
  p.chunk = (blocks + chunks - 1) / chunks * block_size;
  SPARROW_CHECK(p.local_len(0) > 0 && p.chunk_range(ranks - 1).size() > 0, "ring attention: ", seq_len,
                " tokens in blocks of ", block_size, " are too few for ", ranks, " ranks (each needs a block)");

  // need[r][o]: from every active block pair of every head (O(active blocks)); dense: every pair
  // of chunks the causal rule leaves visible.
  p.need.assign(ranks, std::vector<char>(ranks, 0));
  const int64_t chunk_blocks = p.chunk / block_size;
  auto rank_of_chunk = [ranks](int64_t c) { return static_cast<int>(c < ranks ? c : 2 * int64_t(ranks) - 1 - c); };
  if (!layout) {
    for (int64_t cq = 0; cq < chunks; ++cq)
      for (int64_t ck = 0; ck < chunks; ++ck)
        if (p.causally_visible(cq, ck) && p.chunk_range(cq).size() > 0 && p.chunk_range(ck).size() > 0)
          p.need[rank_of_chunk(cq)][rank_of_chunk(ck)] = 1;
  } else {
    for (const BlockCSR& c : layout->heads)
      for (int64_t qb = 0; qb + 1 < static_cast<int64_t>(c.row_ptr.size()); ++qb) {
        const int r = rank_of_chunk(qb / chunk_blocks);
        for (int64_t i = c.row_ptr[qb]; i < c.row_ptr[qb + 1]; ++i)
          p.need[r][rank_of_chunk(c.col_idx[i] / chunk_blocks)] = 1;
      }
  }
  // For each origin: the split k (forward covers distances 1..k, backward k+1..P−1) that needs
  // the fewest hops, and of those the one whose longer path is shortest (a local pattern then
  // talks to its neighbours; a dense layout goes half way round each way, using both
  // directions of every link).
  p.reach_fwd.assign(ranks, 0);
  p.reach_bwd.assign(ranks, 0);
  for (int o = 0; o < ranks; ++o) {
    std::pair<int, int> best{ranks, ranks};  // (hops, longer path): more than any split costs
    for (int k = ranks - 1; k >= 0; --k) {
      int f = 0, b = 0;
      for (int h = 1; h <= k; ++h)
        if (p.need[(o + h) % ranks][o]) f = h;
      for (int h = k + 1; h < ranks; ++h)
        if (p.need[(o + h) % ranks][o]) b = std::max(b, ranks - h);
      if (std::make_pair(f + b, std::max(f, b)) < best) {
        best = {f + b, std::max(f, b)};
        p.reach_fwd[o] = f;
        p.reach_bwd[o] = b;
      }
    }
  }
  return p;
}

}  // namespace sparrow::attn
