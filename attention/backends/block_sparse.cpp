#include "attention/backends/block_sparse.h"

#include "attention/backends/block_flops.h"
#include "attention/kernels/block_attention.h"
#include "attention/ring/context_parallel.h"
#include "framework/core/profile.h"

namespace sparrow::attn {

BlockSparseAttention::BlockSparseAttention(const AttentionConfig& cfg) : cfg_(cfg) {
  SPARROW_CHECK(cfg.block_size > 0, "block_sparse attention: block_size ", cfg.block_size, " (must be > 0)");
  SPARROW_CHECK(cfg.softmax_scale >= 0, "block_sparse attention: softmax_scale ", cfg.softmax_scale,
                " (0 means 1/sqrt(D))");
  check_sparsity_targets("block_sparse attention", cfg);
  at_target_ = cfg;
  at_target_.schedule = SparsitySchedule{};
  stats_.backend = "block_sparse";
  stats_.target_sparsity = cfg_.sparsity_at(0);
}

Tensor BlockSparseAttention::forward(const AttentionCall& call) {
  SPARROW_PROFILE_OP("attention block_sparse");
  check_dim("block_sparse attention", call.q, 4);
  // Under context parallelism the layout is the whole sequence's, and ring attention runs it.
  const int64_t B = call.q.size(0), H = call.q.size(1), D = call.q.size(3);
  const int64_t N = call.context ? call.context->seq_len : call.q.size(2);
  at_target_.sparsity = cfg_.sparsity_at(call.step);
  layout_ = get_layout(at_target_, N, H, call.causal);
  BlockAttentionArgs args;
  args.layout = layout_.get();
  args.layout_owner = layout_;
  args.block_size = layout_->block_size;
  args.causal = call.causal;
  args.scale = cfg_.softmax_scale;
  args.token_major_out = call.token_major_out;
  Tensor out =
      call.context ? ring_.run(call, layout_, cfg_.softmax_scale) : block_attention(call.q, call.k, call.v, args);

  // Counts summed over all H heads (a shared layout counts once per head).
  const BlockLayout& L = *layout_;
  const int64_t Nk = L.key_len ? L.key_len : L.seq_len;
  stats_ = AttentionStats{};
  stats_.backend = "block_sparse";
  stats_.seq_len = N;
  double head_flops = 0;
  for (int64_t h = 0; h < H; ++h) {
    stats_.active_blocks += L.head(h).nnz();
    head_flops += layout_head_flops(L.head(h), N, Nk, L.block_size, D);
  }
  stats_.dense_blocks = L.dense_blocks() * H;
  stats_.density = stats_.dense_blocks ? static_cast<double>(stats_.active_blocks) / stats_.dense_blocks : 0.0;
  stats_.target_sparsity = at_target_.sparsity;
  stats_.flops = head_flops * static_cast<double>(B);
  if (call.context) ring_.add_to(stats_);
  return out;
}

}  // namespace sparrow::attn
