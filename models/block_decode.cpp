// Block::decode: the block's forward for a few new positions, with keys and values from the KV
// cache. The same sub-layers as Block::forward, in the same order; RoPE rotates by the rows' own
// positions (offset first), so the cached keys are exactly the forward's rotated keys.
#include "attention/attention.h"
#include "framework/ops/ops.h"
#include "models/block.h"

namespace sparrow::models {

Tensor Block::decode(const Tensor& x, int64_t first, Tensor& k_cache, Tensor& v_cache, Tensor& q_cache,
                     int64_t step) const {
  SPARROW_CHECK(context_ == nullptr, "Block::decode: not under context parallelism (decode holds the whole sequence)");
  const int64_t B = x.size(0), T = x.size(1), Dh = d_model_ / n_heads_, seq_len = k_cache.size(2);
  const Tensor heads = rope_heads(qkv_->forward(norm(*norm1_, x)), n_heads_, first, rope_base_);  // [3, B, H, T, Dh]
  const Tensor q = reshape(slice(heads, 0, 0, 1), {B, n_heads_, T, Dh});
  Tensor k_rows = slice(k_cache, 2, first, first + T), v_rows = slice(v_cache, 2, first, first + T),
         q_rows = slice(q_cache, 2, first, first + T);
  copy_(q_rows, q);
  copy_(k_rows, reshape(slice(heads, 0, 1, 2), {B, n_heads_, T, Dh}));
  copy_(v_rows, reshape(slice(heads, 0, 2, 3), {B, n_heads_, T, Dh}));

  attn::DecodeCall call;
  call.q = q;
  call.k = slice(k_cache, 2, 0, first + T);
  call.v = slice(v_cache, 2, 0, first + T);
  call.q_cache = slice(q_cache, 2, 0, first + T);
  call.first = first;
  call.seq_len = seq_len;
  call.step = step;
  const Tensor o = attn_->decode(call);  // [B, H, T, Dh]
  const Tensor merged = reshape(permute(o, {0, 2, 1, 3}).contiguous(), {B, T, d_model_});
  const Tensor h = proj_->forward(merged, x);  // x + proj(merged), as forward
  return mlp_->forward(norm(*norm2_, h), h);
}

}  // namespace sparrow::models
