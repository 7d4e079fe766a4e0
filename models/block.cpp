#include "models/block.h"

#include <cmath>

#include "attention/ring/context_parallel.h"
#include "framework/autograd/checkpoint.h"
#include "framework/nn/norm.h"
#include "framework/ops/ops.h"
#include "models/transformer.h"

namespace sparrow::models {

namespace {
std::shared_ptr<nn::Module> make_norm(bool rms, int64_t d, Device device) {
  if (rms) return std::make_shared<nn::RMSNorm>(d, 1e-6, DType::F32, device);
  return std::make_shared<nn::LayerNorm>(d, 1e-5, true, DType::F32, device);
}
}  // namespace

Block::Block(const TransformerOptions& opt, const attn::AttentionConfig& attention, Generator& init_gen,
             Generator& dropout_gen, Device device)
    : d_model_(opt.d_model),
      n_heads_(opt.n_heads),
      dropout_(opt.dropout),
      rope_base_(opt.rope_base),
      recompute_chunk_(opt.recompute_chunk),
      dropout_gen_(&dropout_gen) {
  norm1_ = register_module("norm1", make_norm(opt.rmsnorm, d_model_, device));
  qkv_ =
      register_module("qkv", std::make_shared<nn::Linear>(d_model_, 3 * d_model_, true, init_gen, DType::F32, device));
  proj_ = register_module("proj", std::make_shared<nn::Linear>(d_model_, d_model_, true, init_gen, DType::F32, device));
  norm2_ = register_module("norm2", make_norm(opt.rmsnorm, d_model_, device));
  nn::MLPOptions m;
  m.in = d_model_;
  m.hidden = static_cast<int64_t>(std::llround(opt.mlp_ratio * static_cast<double>(d_model_)));
  m.dropout = opt.dropout;
  m.dropout_gen = &dropout_gen;
  m.device = device;
  mlp_ = register_module("mlp", std::make_shared<nn::MLP>(m, init_gen));
  attn_ = attn::make_attention(attention);
}

Tensor Block::norm(const nn::Module& m, const Tensor& x) const {
  if (auto* ln = dynamic_cast<const nn::LayerNorm*>(&m)) return ln->forward(x);
  return static_cast<const nn::RMSNorm&>(m).forward(x);
}

Tensor Block::attention_sublayer(const Tensor& h, int64_t step, const Tensor& residual) const {
  const int64_t T = h.size(1);
  // qkv [B, T, 3d] → [3, B, H, T, Dh] with RoPE on q and k, in one pass; each of q, k, v is then a
  // contiguous slice in the [B, H, T, Dh] layout the attention kernels read.
  Tensor qkv = qkv_->forward(h), heads;
  if (context_) {
    // This rank's shard is two runs of the sequence's positions (zigzag): RoPE per run.
    std::vector<Tensor> runs;
    int64_t at = 0;
    for (const attn::TokenRange& r : context_->local_ranges()) {
      runs.push_back(rope_heads(slice(qkv, 1, at, at + r.size()), n_heads_, r.begin, rope_base_));
      at += r.size();
    }
    SPARROW_CHECK(at == T, "context parallel: this rank holds ", at, " tokens, the batch has ", T);
    heads = runs.size() == 1 ? runs[0] : concat(runs, 3);
  } else {
    heads = rope_heads(qkv, n_heads_, 0, rope_base_);
  }
  return out_projection(attend(heads, step), residual);
}

Tensor Block::attend(const Tensor& heads, int64_t step) const {
  const int64_t B = heads.size(1), T = heads.size(3), Dh = d_model_ / n_heads_;
  attn::AttentionCall call;
  call.q = reshape(slice(heads, 0, 0, 1), {B, n_heads_, T, Dh});
  call.k = reshape(slice(heads, 0, 1, 2), {B, n_heads_, T, Dh});
  call.v = reshape(slice(heads, 0, 2, 3), {B, n_heads_, T, Dh});
  call.causal = true;
  call.step = step;
  call.context = context_;
  call.token_major_out = true;      // read below as [B, T, H, Dh]
  Tensor o = attn_->forward(call);  // [B, H, T, Dh]; token-major storage where the backend could
  return reshape(permute(o, {0, 2, 1, 3}).contiguous(), {B, T, d_model_});  // then no copy
}

Tensor Block::out_projection(const Tensor& merged, const Tensor& residual) const {
  if (!(dropout_ > 0 && is_training())) return proj_->forward(merged, residual);
  Tensor y = dropout(proj_->forward(merged), dropout_, *dropout_gen_, true);
  return residual.defined() ? add(residual, y) : y;
}

void Block::set_context(const attn::ContextParallel* context) {
  SPARROW_CHECK(!context || attn_->supports_context_parallel(), "attention backend '", attn_->name(),
                "' does not run under context parallelism (dist.context_parallel > 1); the built-in backends do. "
                "Set dist.context_parallel: 1, or give the backend a ring path and supports_context_parallel()");
  context_ = context;
}

Tensor Block::forward(const Tensor& x, int64_t step) const {
  // Context parallelism shards the tokens already (and RoPE follows the shard's runs).
  if (recompute_chunk_ > 0 && context_ == nullptr && x.size(1) > recompute_chunk_) return forward_in_chunks(x, step);
  // Pre-norm residuals, h = x + attention(norm1(x)), h + mlp(norm2(h)), each add done by the
  // sublayer's last GEMM (no pass of its own); the norms' backward folds in the skip's gradient.
  const Tensor h = attention_sublayer(norm(*norm1_, x), step, x);
  return mlp_->forward(norm(*norm2_, h), h);
}

Tensor Block::forward_in_chunks(const Tensor& x, int64_t step) const {
  const int64_t chunk = recompute_chunk_;
  // Tokens are dim 1 of x, of attention's merged output and of h, dim 3 of heads [3, B, H, T, Dh]. The segments are
  // called again in the backward: they capture the block, not this frame.
  Tensor heads = checkpoint_chunks(
      [this](const Tensor& part, int64_t first) {
        return rope_heads(qkv_->forward(norm(*norm1_, part)), n_heads_, first, rope_base_);
      },
      x, 1, chunk, 3, dropout_gen_);
  Tensor h = add(x, checkpoint_chunks([this](const Tensor& part, int64_t) { return out_projection(part); },
                                      attend(heads, step), 1, chunk, 1, dropout_gen_));
  return add(h, checkpoint_chunks([this](const Tensor& part, int64_t) { return mlp_->forward(norm(*norm2_, part)); }, h,
                                  1, chunk, 1, dropout_gen_));
}

}  // namespace sparrow::models
