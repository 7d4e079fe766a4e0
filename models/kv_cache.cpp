#include "models/kv_cache.h"

#include "models/transformer.h"

namespace sparrow::models {

KVCache::KVCache(const TransformerLM& model, int64_t batch, int64_t seq_len) : batch_(batch), seq_len_(seq_len) {
  const TransformerOptions& o = model.options();
  SPARROW_CHECK(batch > 0 && seq_len > 0, "KVCache: batch ", batch, " and sequence length ", seq_len,
                " must be positive");
  const Shape shape{batch, o.n_heads, seq_len, o.d_model / o.n_heads};
  for (int64_t l = 0; l < o.n_layers; ++l) {
    keys_.push_back(zeros(shape));
    values_.push_back(zeros(shape));
    queries_.push_back(zeros(shape));
  }
}

void KVCache::set_length(int64_t n) {
  SPARROW_CHECK(n >= 0 && n <= seq_len_, "KVCache: length ", n, " outside [0, ", seq_len_, "]");
  length_ = n;
}

}  // namespace sparrow::models
