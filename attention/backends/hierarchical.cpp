#include "attention/backends/hierarchical.h"
#include "attention/backends/block_pooling.h"

#include <algorithm>
#include <string>

#include "attention/backends/block_flops.h"
#include "attention/kernels/block_attention.h"
#include "framework/core/profile.h"
#include "framework/ops/ops.h"

namespace sparrow::attn {

HierarchicalGeometry hierarchical_geometry(const HierarchicalConfig& hc, int64_t seq_len, int64_t block_size) {
  SPARROW_CHECK(seq_len > 0 && block_size > 0, "hierarchical attention: length ", seq_len, ", block size ", block_size);
  HierarchicalGeometry g;
  g.seq_len = seq_len;
  g.block_size = block_size;
  g.pool = hc.pool;
  g.fine_blocks = (seq_len + block_size - 1) / block_size;
  g.group = {1};
  g.tokens = {seq_len};
  g.blocks = {g.fine_blocks};
  // Level l is kept while its blocks (P^l fine blocks each) number at least two; P^l < nb ≤ N
  // then holds for every kept level, so the products never overflow.
  for (int64_t l = 1; l <= hc.levels; ++l) {
    const int64_t grp = g.group.back() * hc.pool;
    if (grp >= g.fine_blocks) break;
    g.group.push_back(grp);
    g.tokens.push_back((seq_len + grp - 1) / grp);
    g.blocks.push_back((g.tokens.back() + block_size - 1) / block_size);
  }
  g.levels = static_cast<int64_t>(g.group.size()) - 1;
  int64_t at = 0;
  for (int64_t l = 0; l <= g.levels; ++l) {
    g.first_block.push_back(at);
    at += g.blocks[l];
  }
  g.key_len = g.first_block.back() * block_size + g.tokens.back();
  return g;
}

std::vector<int64_t> hierarchical_key_last(const HierarchicalGeometry& g, bool causal) {
  const int64_t N = g.seq_len, bs = g.block_size;
  std::vector<int64_t> last(g.key_len, N);  // padding: after every query, so never visible
  for (int64_t l = 0; l <= g.levels; ++l) {
    const int64_t k0 = g.first_block[l] * bs;
    for (int64_t t = 0; t < g.tokens[l]; ++t) last[k0 + t] = causal ? std::min(N, (t + 1) * g.group[l]) - 1 : 0;
  }
  return last;
}

namespace {

struct RowWalk {
  const HierarchicalGeometry& g;
  int64_t lo, hi, row;  // window W = fine blocks [lo, hi); the query block
  bool causal;
  std::vector<int32_t>& cols;

  // Block c of level l covers fine blocks [c·P^l, min(nb, (c+1)·P^l)).
  void visit(int64_t l, int64_t c) {
    const int64_t f0 = c * g.group[l], f1 = std::min(g.fine_blocks, (c + 1) * g.group[l]);
    if (f1 <= lo || f0 >= hi) {        // clear of the window: listed whole, unless in the future
      if (causal && f0 > row) return;  // (causal hi = row + 1, so a block past W is past the row)
      cols.push_back(static_cast<int32_t>(g.first_block[l] + c));
      return;
    }
    if (l == 0) {  // a fine block inside the window
      cols.push_back(static_cast<int32_t>(c));
      return;
    }
    for (int64_t child = f0 / g.group[l - 1]; child * g.group[l - 1] < f1; ++child) visit(l - 1, child);
  }
};

}  // namespace

BlockLayout build_hierarchical_layout(const HierarchicalConfig& hc, const HierarchicalGeometry& g, bool causal) {
  const int64_t nb = g.fine_blocks, w = hc.fine_window;
  BlockLayout L;
  L.seq_len = g.seq_len;
  L.key_len = g.key_len;
  L.block_size = g.block_size;
  L.num_q_blocks = nb;
  L.num_k_blocks = (g.key_len + g.block_size - 1) / g.block_size;
  L.causal = causal;
  L.description = "hierarchical(levels=" + std::to_string(hc.levels) + " (" + std::to_string(g.levels) +
                  " used), pool=" + std::to_string(hc.pool) + ", fine_window=" + std::to_string(w) + ")";
  BlockCSR c;
  c.row_ptr.reserve(nb + 1);
  c.row_ptr.push_back(0);
  std::vector<int32_t> row;
  for (int64_t r = 0; r < nb; ++r) {
    row.clear();
    RowWalk walk{g, std::max<int64_t>(0, r - w), causal ? r + 1 : std::min(nb, r + w + 1), r, causal, row};
    for (int64_t root = 0; root < g.blocks[g.levels]; ++root) walk.visit(g.levels, root);
    std::sort(row.begin(), row.end());
    c.col_idx.insert(c.col_idx.end(), row.begin(), row.end());
    c.row_ptr.push_back(static_cast<int64_t>(c.col_idx.size()));
  }
  c.build_transpose(L.num_k_blocks);
  L.heads.push_back(std::move(c));
  return L;
}

Tensor with_summaries(const Tensor& x, const HierarchicalGeometry& g) {
  if (g.levels == 0) return x;
  const int64_t B = x.size(0), H = x.size(1), D = x.size(3), bs = g.block_size;
  std::vector<Tensor> parts{x};
  for (int64_t l = 1; l <= g.levels; ++l) {
    const int64_t pad = g.blocks[l - 1] * bs - g.tokens[l - 1];  // align level l's segment
    if (pad > 0) parts.push_back(zeros({B, H, pad, D}, x.dtype(), x.device()));
    parts.push_back(pool_means(x, g.group[l]));
  }
  return concat(parts, 2);
}

HierarchicalAttention::HierarchicalAttention(const AttentionConfig& cfg) : cfg_(cfg) {
  const HierarchicalConfig& h = cfg.hierarchical;
  SPARROW_CHECK(cfg.block_size > 0, "hierarchical attention: block_size ", cfg.block_size, " (must be > 0)");
  SPARROW_CHECK(h.levels >= 1, "hierarchical attention: levels ", h.levels, " (must be ≥ 1)");
  SPARROW_CHECK(h.pool >= 2, "hierarchical attention: pool ", h.pool, " (must be ≥ 2)");
  SPARROW_CHECK(h.fine_window >= 0, "hierarchical attention: fine_window ", h.fine_window, " (must be ≥ 0)");
  SPARROW_CHECK(cfg.softmax_scale >= 0, "hierarchical attention: softmax_scale ", cfg.softmax_scale,
                " (0 means 1/sqrt(D))");
  stats_.backend = "hierarchical";
}

void HierarchicalAttention::prepare(int64_t N, bool causal) {
  if (layout_ && geo_.seq_len == N && layout_causal_ == causal) return;
  geo_ = hierarchical_geometry(cfg_.hierarchical, N, cfg_.block_size);
  layout_ = std::make_shared<const BlockLayout>(build_hierarchical_layout(cfg_.hierarchical, geo_, causal));
  key_last_ = hierarchical_key_last(geo_, causal);
  layout_causal_ = causal;
}

Tensor HierarchicalAttention::forward(const AttentionCall& call) {
  SPARROW_PROFILE_OP("attention hierarchical");
  const char* op = "hierarchical attention";
  check_qkv(op, call);
  const int64_t B = call.q.size(0), H = call.q.size(1), D = call.q.size(3);
  const int64_t N = call.context ? call.context->seq_len : call.q.size(2);
  Tensor out;
  if (call.context) {
    out = forward_context_parallel(call);
  } else {
    prepare(N, call.causal);
    BlockAttentionArgs args;
    args.layout = layout_.get();
    args.layout_owner = layout_;
    args.block_size = cfg_.block_size;
    args.causal = true;  // masking is all in key_last (see the header)
    args.scale = cfg_.softmax_scale;
    args.key_last = key_last_;
    out = block_attention(call.q, with_summaries(call.k, geo_), with_summaries(call.v, geo_), args);
  }

  const BlockCSR& c = layout_->heads[0];
  stats_ = AttentionStats{};
  stats_.backend = "hierarchical";
  stats_.seq_len = N;
  stats_.active_blocks = c.nnz() * H;
  stats_.dense_blocks = layout_->dense_blocks() * H;
  stats_.density = stats_.dense_blocks ? static_cast<double>(stats_.active_blocks) / stats_.dense_blocks : 0.0;
  stats_.flops = layout_head_flops(c, N, geo_.key_len, cfg_.block_size, D) * static_cast<double>(B * H);
  if (call.context) {
    ring_.add_to(stats_);
    stats_.ring_collective_bytes = collective_bytes_;
  }
  return out;
}

}  // namespace sparrow::attn
