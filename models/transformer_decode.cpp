// TransformerLM::decode and its window: the forward's computation for a few new positions, the
// earlier ones' keys and values read from the KV cache instead of recomputed.
#include "framework/autograd/node.h"
#include "framework/nn/norm.h"
#include "framework/ops/ops.h"
#include "models/block.h"
#include "models/kv_cache.h"
#include "models/transformer.h"

namespace sparrow::models {

Tensor TransformerLM::decode(const Tensor& ids, int64_t first, KVCache& cache, int64_t step) {
  SPARROW_CHECK(ids.dim() == 2 && ids.dtype() == DType::I32 && !ids.is_cuda(),
                "TransformerLM::decode: ids must be i32 [B, T] on the CPU, got ", describe(ids));
  const int64_t B = ids.size(0), T = ids.size(1);
  SPARROW_CHECK(B == cache.batch(), "TransformerLM::decode: ", B, " sequences for a cache of ", cache.batch());
  SPARROW_CHECK(T > 0 && first >= 0 && first <= cache.length() && first + T <= cache.seq_len(),
                "TransformerLM::decode: positions [", first, ", ", first + T, ") with ", cache.length(),
                " cached, sequence length ", cache.seq_len());
  SPARROW_CHECK(!is_training() || opt_.dropout == 0, "TransformerLM::decode: the model has dropout ", opt_.dropout,
                "; call eval() before decoding");
  SPARROW_CHECK(!embed_->weight.is_cuda(),
                "TransformerLM::decode: the KV-cache decode runs on the CPU; the model is on ",
                embed_->weight.device().str());
  NoGradGuard no_grad;
  Tensor x = embed_->forward(ids);
  for (size_t l = 0; l < blocks_.size(); ++l)
    x = blocks_[l]->decode(x, first, cache.keys(int64_t(l)), cache.values(int64_t(l)), cache.queries(int64_t(l)), step);
  if (auto* ln = dynamic_cast<nn::LayerNorm*>(norm_f_.get()))
    x = ln->forward(x);
  else
    x = static_cast<nn::RMSNorm&>(*norm_f_).forward(x);
  cache.set_length(first + T);
  return head_ ? head_->forward(x) : matmul(x, embed_->weight, false, true);
}

}  // namespace sparrow::models
