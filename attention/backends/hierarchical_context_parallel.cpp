// Hierarchical attention under context parallelism. Its keys are the sequence's fine keys and
// the pooled summaries of every level (hierarchical.h). The fine keys are split across ranks like
// any sequence, so they go round the ring over the fine columns of the layout, skipping the steps
// those columns leave empty. A summary pools P^l tokens that may lie on several ranks (zigzag
// chunks), so each rank sums the tokens of every group that it holds, one all-reduce over the
// context group adds those partial sums (keys and values of all levels in one call), and every
// rank divides by the group sizes: every rank then holds every summary, the one-process means.
// Its queries attend to them at the ring's local step (RingLocalKeys), inside the same softmax.
// The all-reduce is differentiable (dist::sum_over_ranks): each rank's share of a summary's
// gradient is summed over ranks on the way back, then spread over the tokens it pools.
//
// Cost, per layer, (B, H) and direction (keys, values): the summaries number
// T = N/P + N/P² + … ≈ N/(P−1) tokens for pool P, all-reduced once forward and once backward,
// and held whole by every rank: at pool 4 and 4 ranks they are as many as a rank's shard of the
// fine keys. The fine keys' ring traffic is the block-sparse one of the fine layout.
#include <algorithm>

#include "attention/backends/hierarchical.h"
#include "attention/ring/context_parallel.h"
#include "framework/dist/sum_over_ranks.h"
#include "framework/ops/ops.h"

namespace sparrow::attn {

namespace {

// Layout L's columns [first, last) as a layout of its own (columns renumbered from 0).
std::shared_ptr<const BlockLayout> columns(const BlockLayout& L, int64_t first, int64_t last, int64_t key_len,
                                           const std::string& what) {
  auto sub = std::make_shared<BlockLayout>();
  sub->seq_len = L.seq_len;
  sub->key_len = key_len;
  sub->block_size = L.block_size;
  sub->num_q_blocks = L.num_q_blocks;
  sub->num_k_blocks = last - first;
  sub->causal = L.causal;
  sub->description = L.description + " [" + what + "]";
  for (const BlockCSR& c : L.heads) {
    BlockCSR s;
    s.row_ptr.assign(1, 0);
    for (int64_t r = 0; r < L.num_q_blocks; ++r) {
      for (int64_t i = c.row_ptr[r]; i < c.row_ptr[r + 1]; ++i)
        if (c.col_idx[i] >= first && c.col_idx[i] < last)
          s.col_idx.push_back(static_cast<int32_t>(c.col_idx[i] - first));
      s.row_ptr.push_back(static_cast<int64_t>(s.col_idx.size()));
    }
    s.build_transpose(sub->num_k_blocks);
    sub->heads.push_back(std::move(s));
  }
  return sub;
}

// x's tokens [b, e) of the whole sequence (held at x's rows [at, at + e − b)) summed per group of
// G tokens, as rows [0, n) of the level: zeros where this run holds none of a group.
Tensor run_group_sums(const Tensor& x, int64_t at, int64_t b, int64_t e, int64_t G, int64_t n) {
  const int64_t B = x.size(0), H = x.size(1), D = x.size(3);
  const int64_t g0 = b / G, g1 = (e + G - 1) / G;
  std::vector<Tensor> padded;
  if (b > g0 * G) padded.push_back(zeros({B, H, b - g0 * G, D}, x.dtype(), x.device()));
  padded.push_back(slice(x, 2, at, at + (e - b)));
  if (g1 * G > e) padded.push_back(zeros({B, H, g1 * G - e, D}, x.dtype(), x.device()));
  Tensor sums = sum(reshape(concat(padded, 2), {B, H, g1 - g0, G, D}), {3});
  std::vector<Tensor> placed;
  if (g0 > 0) placed.push_back(zeros({B, H, g0, D}, x.dtype(), x.device()));
  placed.push_back(sums);
  if (n > g1) placed.push_back(zeros({B, H, n - g1, D}, x.dtype(), x.device()));
  return placed.size() == 1 ? placed[0] : concat(placed, 2);
}

// This rank's partial sums of every level's groups, levels one after another along dim 2.
Tensor partial_sums(const Tensor& x, const HierarchicalGeometry& g, const std::vector<TokenRange>& runs) {
  std::vector<Tensor> levels;
  for (int64_t l = 1; l <= g.levels; ++l) {
    Tensor level;
    int64_t at = 0;
    for (const TokenRange& r : runs) {
      Tensor s = run_group_sums(x, at, r.begin, r.end, g.group[l], g.tokens[l]);
      level = level.defined() ? add(level, s) : s;
      at += r.size();
    }
    levels.push_back(level);
  }
  return concat(levels, 2);
}

// Summed partial sums (levels along dim 2) → the summary segment of K': each level's means,
// each level padded to whole blocks but the last (as with_summaries lays them out).
Tensor summary_segment(const Tensor& sums, const HierarchicalGeometry& g) {
  const int64_t B = sums.size(0), H = sums.size(1), D = sums.size(3), N = g.seq_len;
  std::vector<Tensor> parts;
  int64_t at = 0;
  for (int64_t l = 1; l <= g.levels; ++l) {
    const int64_t G = g.group[l], n = g.tokens[l], last = N - (n - 1) * G;  // the last group's tokens
    if (n > 1) parts.push_back(mul_scalar(slice(sums, 2, at, at + n - 1), 1.0 / static_cast<double>(G)));
    parts.push_back(mul_scalar(slice(sums, 2, at + n - 1, at + n), 1.0 / static_cast<double>(last)));
    at += n;
    if (l < g.levels && g.blocks[l] * g.block_size > n)
      parts.push_back(zeros({B, H, g.blocks[l] * g.block_size - n, D}, sums.dtype(), sums.device()));
  }
  return concat(parts, 2);
}

}  // namespace

void HierarchicalAttention::prepare_context_parallel() {
  const int64_t nb = geo_.fine_blocks, bs = cfg_.block_size;
  if (split_from_ == layout_) return;
  split_from_ = layout_;
  fine_layout_ = columns(*layout_, 0, nb, geo_.seq_len, "fine keys");
  summary_layout_ = columns(*layout_, nb, layout_->num_k_blocks, geo_.key_len - nb * bs, "summaries");
  summary_key_last_.assign(key_last_.begin() + nb * bs, key_last_.end());
}

Tensor HierarchicalAttention::forward_context_parallel(const AttentionCall& call) {
  const ContextParallel& cp = *call.context;
  prepare(cp.seq_len, call.causal);
  prepare_context_parallel();
  const std::vector<TokenRange> runs = cp.local_ranges();
  RingLocalKeys local;
  collective_bytes_ = 0;
  if (geo_.levels > 0) {
    Tensor sums = concat({partial_sums(call.k, geo_, runs), partial_sums(call.v, geo_, runs)}, 2);
    sums = dist::sum_over_ranks(sums, *cp.comm);
    collective_bytes_ = static_cast<int64_t>(sums.nbytes());
    const int64_t half = sums.size(2) / 2;
    local.k = summary_segment(slice(sums, 2, 0, half), geo_);
    local.v = summary_segment(slice(sums, 2, half, 2 * half), geo_);
    local.layout = summary_layout_;
    local.key_last = summary_key_last_;
  }
  return ring_.run(call, fine_layout_, cfg_.softmax_scale, local);
}

}  // namespace sparrow::attn
