// What an attention layer's incremental decode (sampling with a KV cache) is given: the queries
// of a few new positions and the cached keys/values of every position so far.
//
// The contract every backend's decode keeps: its outputs are the rows, at positions
// [first, first + T), of the forward over a sequence of the model's length seq_len that begins
// with the cached positions — the layout, hierarchical geometry and auto's choice are those of
// seq_len, the length the model was trained at, so decoding reproduces what each position saw in
// training. Causal masking always (a decoder): the forward's rows at those positions depend only
// on earlier positions, so the new rows are all a decode computes. Adaptive's selection reads
// earlier positions' queries (the previous block's mean), so the cache holds queries too.
#pragma once
#include <cstdint>

#include "framework/core/tensor.h"

namespace sparrow::attn {

struct DecodeCall {
  Tensor q;             // [B, H, T, D]: queries at positions first .. first+T−1 (RoPE applied)
  Tensor k, v;          // [B, H, Nc, D], Nc ≥ first+T: the cache; rows at positions ≥ first+T are never read
  Tensor q_cache;       // [B, H, Nc, D]: the queries of every position (rows [first, first+T) are q's)
  int64_t first = 0;    // position of q's first row
  int64_t seq_len = 0;  // the model's sequence length (first + T ≤ seq_len)
  int64_t step = 0;     // the training step of the weights (what AttentionCall::step was in training)
};

// Throws (naming op) unless the shapes fit the contract above.
void check_decode_call(const char* op, const DecodeCall& call);

}  // namespace sparrow::attn
