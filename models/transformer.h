// Decoder-only transformer language model (GPT-style, pre-norm):
//   x = embed(ids)                                            [B, T, d]
//   for each block:  x += drop(proj(attn(rope(q), rope(k), v)))   with q, k, v = split(qkv(norm1(x)))
//                    x += mlp(norm2(x))
//   logits = norm_f(x) · Wᵀ   (W the embedding when tied, else a separate head)
// Each layer builds its own attention from its own AttentionConfig (a default plus per-layer
// overrides), so one model can mix dense and sparse layers. Built on framework/ and the
// attention interface only.
#pragma once
#include <memory>
#include <vector>

#include "attention/attention.h"
#include "framework/core/rng.h"
#include "framework/nn/embedding.h"
#include "framework/nn/linear.h"
#include "framework/nn/mlp.h"
#include "framework/nn/module.h"

namespace sparrow::models {

struct TransformerOptions {
  int64_t vocab_size = 256;
  int64_t n_layers = 4;
  int64_t d_model = 256;
  int64_t n_heads = 4;
  double mlp_ratio = 4.0;
  double dropout = 0.0;
  bool tied_embeddings = true;
  bool rmsnorm = false;  // RMSNorm instead of LayerNorm
  double rope_base = 10000.0;
  bool recompute = false;  // activation checkpointing per block
  // > 0: each block's token-wise parts (norm1 → qkv → RoPE, proj → dropout, norm2 → MLP) are
  // checkpointed in chunks of this many tokens (checkpoint_chunks): only attention's own inputs and
  // outputs are kept whole. With `recompute`, it bounds a block's replay to those plus one chunk.
  int64_t recompute_chunk = 0;
  std::vector<attn::AttentionConfig> attention;  // one per layer (size n_layers)
};

class Block;
class KVCache;

class TransformerLM : public nn::Module {
 public:
  // Parameters are created in f32 on `device`; GPT-2 initialisation (N(0, 0.02), residual
  // projections scaled by 1/√(2·n_layers)) from init_gen. dropout draws from its own generator,
  // whose state the trainer checkpoints (dropout_generator()).
  TransformerLM(const TransformerOptions& opt, Generator& init_gen, Device device = Device::cpu());
  ~TransformerLM() override;

  // ids I32 [B, T] → logits [B, T, V] in `compute` dtype (weights are cast at use when it
  // differs from theirs: f32 master weights, bf16 compute). `step` reaches every attention
  // layer (AttentionCall::step), which takes its target sparsity at that step from its schedule.
  Tensor forward(const Tensor& ids, int64_t step, DType compute = DType::F32);
  // Mean next-token cross-entropy (targets −100 are ignored), as an f32 scalar. The head and the
  // loss run in chunks of loss_chunk_rows(V) tokens (linear_cross_entropy): the [B·T, V] logits
  // are never held whole.
  Tensor loss(const Tensor& ids, const Tensor& targets, int64_t step, DType compute = DType::F32);
  // Tokens a chunk of the head + loss for a vocabulary of V: 2²⁴ logits (64 MiB in f32), at least
  // 1024 rows (the memory estimate counts the same).
  static int64_t loss_chunk_rows(int64_t vocab_size);

  // Incremental decode with a KV cache (models/kv_cache.h; transformer_decode.cpp): ids I32
  // [B, T] at positions [first, first+T) → their logits [B, T, V] in f32, equal to the forward's
  // at those positions (the forward over any sequence beginning with them: attention/decode_call.h). The cache must
  // hold positions [0, first) (first ≤ cache.length()); rows from first on are (re)written and
  // the cache then holds [0, first+T). first + T ≤ cache.seq_len(). On the CPU, in eval mode
  // (no dropout), without autograd. `step`: the training step of the weights.
  Tensor decode(const Tensor& ids, int64_t first, KVCache& cache, int64_t step);

  const TransformerOptions& options() const { return opt_; }
  int64_t num_layers() const { return static_cast<int64_t>(blocks_.size()); }
  attn::Attention& attention(int64_t layer);
  // Context parallelism: ids/targets then hold this rank's zigzag shard of each sequence
  // (attn::zigzag_shard), and every attention layer runs as ring attention. Null: off.
  void set_context_parallel(const attn::ContextParallel* context);
  std::vector<attn::AttentionStats> attention_stats() const;
  // Each layer's target sparsity for a forward at `step` (AttentionConfig::sparsity_at): what
  // the layers' layouts depend on besides the shapes. A captured CUDA graph holds while these
  // stay the same; checkpoints and metrics record them.
  std::vector<double> sparsity_targets_at(int64_t step) const;
  Generator& dropout_generator() { return dropout_gen_; }
  // Forward FLOPs per token of the matrix products (6× this ≈ a training step's), excluding
  // attention's score/value products, which stats() counts per layer.
  double dense_flops_per_token() const;

 private:
  // ids → the final norm's output [B, T, d] in `compute` (the forward without the head).
  Tensor hidden(const Tensor& ids, int64_t step, DType compute);
  // The head's weight [V, d] in `compute` (the tied embedding's when there is no head).
  Tensor head_weight(DType compute) const;

  TransformerOptions opt_;
  Generator dropout_gen_;
  std::shared_ptr<nn::Embedding> embed_;
  std::vector<std::shared_ptr<Block>> blocks_;
  std::shared_ptr<nn::Module> norm_f_;
  std::shared_ptr<nn::Linear> head_;  // null when tied
};

}  // namespace sparrow::models
