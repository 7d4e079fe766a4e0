// The KV cache of incremental decoding: per layer, the keys (RoPE applied) and values of every
// position decoded so far — and the queries, which adaptive attention's selection reads (the
// previous block's mean) — in buffers [B, H, seq_len, Dh] allocated once at the model's sequence
// length, so a new token writes its own rows and nothing is copied as the sequence grows.
#pragma once
#include <cstdint>
#include <vector>

#include "framework/core/tensor.h"

namespace sparrow::models {

class TransformerLM;

class KVCache {
 public:
  // Empty buffers for `batch` sequences of up to seq_len positions, in f32 on the CPU (where the
  // decode runs).
  KVCache(const TransformerLM& model, int64_t batch, int64_t seq_len);

  int64_t batch() const { return batch_; }
  int64_t seq_len() const { return seq_len_; }
  int64_t length() const { return length_; }  // positions [0, length) hold decoded rows
  Tensor& keys(int64_t layer) { return keys_.at(static_cast<size_t>(layer)); }
  Tensor& values(int64_t layer) { return values_.at(static_cast<size_t>(layer)); }
  Tensor& queries(int64_t layer) { return queries_.at(static_cast<size_t>(layer)); }
  void set_length(int64_t n);

 private:
  int64_t batch_, seq_len_, length_ = 0;
  std::vector<Tensor> keys_, values_, queries_;
};

}  // namespace sparrow::models
