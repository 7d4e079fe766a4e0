#include "models/transformer.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "framework/autograd/checkpoint.h"
#include "framework/autograd/node.h"
#include "framework/nn/init.h"
#include "framework/nn/norm.h"
#include "framework/ops/ops.h"
#include "models/block.h"

namespace sparrow::models {

TransformerLM::TransformerLM(const TransformerOptions& opt, Generator& init_gen, Device device)
    : opt_(opt), dropout_gen_(init_gen.seed() ^ 0x5bd1e995ull) {
  SPARROW_CHECK(opt.n_layers > 0 && opt.d_model > 0 && opt.n_heads > 0 && opt.vocab_size > 0,
                "TransformerLM: n_layers, d_model, n_heads and vocab_size must be positive");
  SPARROW_CHECK(opt.d_model % opt.n_heads == 0, "TransformerLM: d_model ", opt.d_model, " is not divisible by n_heads ",
                opt.n_heads);
  SPARROW_CHECK((opt.d_model / opt.n_heads) % 2 == 0, "TransformerLM: head dim ", opt.d_model / opt.n_heads,
                " must be even for rotary embeddings");
  SPARROW_CHECK(static_cast<int64_t>(opt.attention.size()) == opt.n_layers, "TransformerLM: ", opt.attention.size(),
                " attention configs for ", opt.n_layers, " layers");
  embed_ = register_module(
      "embed", std::make_shared<nn::Embedding>(opt.vocab_size, opt.d_model, init_gen, 0.02, DType::F32, device));
  auto blocks = register_module("blocks", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < opt.n_layers; ++i)
    blocks_.push_back(blocks->push_back(
        std::make_shared<Block>(opt, opt.attention[static_cast<size_t>(i)], init_gen, dropout_gen_, device)));
  if (opt.rmsnorm)
    norm_f_ = register_module("norm_f", std::make_shared<nn::RMSNorm>(opt.d_model, 1e-6, DType::F32, device));
  else
    norm_f_ = register_module("norm_f", std::make_shared<nn::LayerNorm>(opt.d_model, 1e-5, true, DType::F32, device));
  if (!opt.tied_embeddings)
    head_ = register_module(
        "head", std::make_shared<nn::Linear>(opt.d_model, opt.vocab_size, false, init_gen, DType::F32, device));
  // GPT-2 initialisation: matrices N(0, 0.02); the projections that write into the residual
  // stream N(0, 0.02/√(2L)) so the residual's variance does not grow with depth; biases 0.
  const double resid_std = 0.02 / std::sqrt(2.0 * static_cast<double>(opt.n_layers));
  for (auto& p : named_parameters()) {
    const std::string& n = p.name;
    Tensor t = p.tensor;
    if (n.size() >= 5 && n.compare(n.size() - 5, 5, ".bias") == 0 && n.find("norm") == std::string::npos) {
      fill_(t, 0.0);
    } else if (t.dim() == 2 && n.rfind("embed", 0) != 0) {
      bool resid = n.find(".proj.weight") != std::string::npos;
      nn::init::normal_(t, init_gen, 0.0, resid ? resid_std : 0.02);
    }
  }
}

TransformerLM::~TransformerLM() = default;

void TransformerLM::set_context_parallel(const attn::ContextParallel* context) {
  for (auto& b : blocks_) b->set_context(context);
}

attn::Attention& TransformerLM::attention(int64_t layer) { return blocks_.at(static_cast<size_t>(layer))->attention(); }

std::vector<double> TransformerLM::sparsity_targets_at(int64_t step) const {
  std::vector<double> s;
  for (const attn::AttentionConfig& a : opt_.attention) s.push_back(a.sparsity_at(step));
  return s;
}

std::vector<attn::AttentionStats> TransformerLM::attention_stats() const {
  std::vector<attn::AttentionStats> s;
  for (auto& b : blocks_) s.push_back(b->attention().stats());
  return s;
}

double TransformerLM::dense_flops_per_token() const {
  const double d = static_cast<double>(opt_.d_model);
  const double hidden = std::round(opt_.mlp_ratio * d);
  const double per_layer = 2.0 * (d * 3 * d + d * d + 2 * d * hidden);
  return static_cast<double>(opt_.n_layers) * per_layer + 2.0 * d * static_cast<double>(opt_.vocab_size);
}

Tensor TransformerLM::hidden(const Tensor& ids, int64_t step, DType compute) {
  SPARROW_CHECK(ids.dim() == 2 && ids.dtype() == DType::I32, "TransformerLM: ids must be i32 [B, T], got ",
                describe(ids));
  Tensor x = embed_->forward(ids).to(compute);
  for (auto& b : blocks_) {
    Block* blk = b.get();
    if (opt_.recompute && grad_enabled()) {
      // Replays must draw the same dropout masks: rewind the dropout generator to where the
      // first pass started this block.
      // Afterwards the generator goes back to where the backward found it, so a run with
      // recompute draws exactly the masks a run without it does.
      const uint64_t seed = dropout_gen_.seed(), offset = dropout_gen_.offset();
      Generator* gen = &dropout_gen_;
      auto resume_at = std::make_shared<uint64_t>(0);
      x = checkpoint([blk, step](const Tensor& in) { return blk->forward(in, step); }, x,
                     [gen, seed, offset, resume_at] {
                       *resume_at = gen->offset();
                       gen->set_state(seed, offset);
                     },
                     [gen, seed, resume_at] { gen->set_state(seed, *resume_at); });
    } else {
      x = blk->forward(x, step);
    }
  }
  if (auto* ln = dynamic_cast<nn::LayerNorm*>(norm_f_.get())) return ln->forward(x);
  return static_cast<nn::RMSNorm&>(*norm_f_).forward(x);
}

Tensor TransformerLM::head_weight(DType compute) const {
  // Mixed precision: the f32 master weight cast at use (recorded: its gradient comes back in f32).
  return (head_ ? head_->weight : embed_->weight).to(compute);
}

Tensor TransformerLM::forward(const Tensor& ids, int64_t step, DType compute) {
  return matmul(hidden(ids, step, compute), head_weight(compute), false, true);
}

int64_t TransformerLM::loss_chunk_rows(int64_t vocab_size) {
  return std::max<int64_t>(1024, (int64_t{1} << 24) / std::max<int64_t>(vocab_size, 1));
}

Tensor TransformerLM::loss(const Tensor& ids, const Tensor& targets, int64_t step, DType compute) {
  SPARROW_CHECK(targets.shape() == ids.shape() && targets.dtype() == DType::I32, "TransformerLM::loss: targets ",
                describe(targets), " do not match ids ", describe(ids));
  const Tensor x = hidden(ids, step, compute);
  const int64_t n = ids.numel();
  // Cross-entropy in f32 whatever the compute dtype (the log-sum-exp over the vocabulary is where
  // bf16 loses most), a chunk of tokens at a time.
  return linear_cross_entropy(reshape(x, {n, opt_.d_model}), head_weight(compute), reshape(targets, {n}),
                              loss_chunk_rows(opt_.vocab_size), -100);
}

}  // namespace sparrow::models
