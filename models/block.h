// One pre-norm transformer block: attention and MLP sub-layers, each with a residual.
#pragma once
#include <memory>

#include "attention/attention.h"
#include "framework/core/rng.h"
#include "framework/nn/linear.h"
#include "framework/nn/mlp.h"
#include "framework/nn/module.h"

namespace sparrow::models {

struct TransformerOptions;

class Block : public nn::Module {
 public:
  Block(const TransformerOptions& opt, const attn::AttentionConfig& attention, Generator& init_gen,
        Generator& dropout_gen, Device device);
  // x [B, T, d] → [B, T, d]
  Tensor forward(const Tensor& x, int64_t step) const;
  // Incremental decode of positions [first, first+T): x [B, T, d] → [B, T, d], the forward's rows
  // at those positions. Writes this layer's keys/values of those positions into the cache
  // buffers k_cache, v_cache [B, H, seq_len, Dh], whose rows [0, first) hold earlier positions.
  // Inference only: no dropout, no autograd (block_decode.cpp).
  Tensor decode(const Tensor& x, int64_t first, Tensor& k_cache, Tensor& v_cache, Tensor& q_cache, int64_t step) const;
  attn::Attention& attention() const { return *attn_; }
  // Under context parallelism x holds this rank's shard of each sequence (null: the whole).
  // Throws when the attention backend does not run on a shard (Attention::supports_context_parallel).
  void set_context(const attn::ContextParallel* context);

 private:
  Tensor norm(const nn::Module& m, const Tensor& x) const;
  // residual + attention(h) (the residual added by the output projection's GEMM when it is given)
  Tensor attention_sublayer(const Tensor& h, int64_t step, const Tensor& residual = Tensor()) const;
  // heads [3, B, H, T, Dh] (q, k, v after RoPE) → attention's output, heads merged: [B, T, d]
  Tensor attend(const Tensor& heads, int64_t step) const;
  // [B, T, d] → residual + dropout(proj(merged)); the residual (optional) rides in proj's GEMM when no
  // dropout acts.
  Tensor out_projection(const Tensor& merged, const Tensor& residual = Tensor()) const;
  // forward with the token-wise parts in checkpointed chunks (TransformerOptions::recompute_chunk)
  Tensor forward_in_chunks(const Tensor& x, int64_t step) const;

  int64_t d_model_, n_heads_;
  double dropout_;
  double rope_base_;
  int64_t recompute_chunk_;
  Generator* dropout_gen_;
  std::shared_ptr<nn::Module> norm1_, norm2_;
  std::shared_ptr<nn::Linear> qkv_, proj_;
  std::shared_ptr<nn::MLP> mlp_;
  std::unique_ptr<attn::Attention> attn_;
  const attn::ContextParallel* context_ = nullptr;
};

}  // namespace sparrow::models
