// decode_attention: the rows of block attention for a few queries at known positions, against a
// KV cache — the incremental-decode counterpart of block_attention (block_attention.h), with the
// same visibility rule:
//   query at position p = first + i sees key j iff j's key block is in the layout row of p's
//   query block (every block when there is no layout) and key_last[j] ≤ p (causal, per element;
//   key_last[j] = j for an ordinary key).
// Each row is one exact softmax over every key it sees, accumulated in f64: O = Σ exp(s − m)·v /
// Σ exp(s − m), s = scale·q·k. A row that sees nothing gets O = 0, as in block_attention.
// No autograd (inference only). CPU only: the GPU has no decode kernel yet, and a CUDA tensor is
// refused with an error saying so rather than moved silently.
#pragma once
#include <cstdint>
#include <vector>

#include "attention/layout/block_layout.h"
#include "framework/core/tensor.h"

namespace sparrow::attn {

struct DecodeAttentionArgs {
  // Layout over (query blocks of the whole sequence) × (key blocks); its heads: 1 (shared), H, or
  // B·H (one per batch·head, index b·H + h, as adaptive builds). Null: every key block.
  const BlockLayout* layout = nullptr;
  int64_t block_size = 64;        // used when layout is null
  double scale = 0.0;             // 0: 1/sqrt(D)
  std::vector<int64_t> key_last;  // per key (size Nk); empty: key_last[j] = j
  int64_t first = 0;              // position of q's first row
};

// q [B, H, T, D]; k, v [B, H, Nk, D] (strided views allowed, e.g. a slice of a cache), f32 or
// f64, one dtype. Returns O [B, H, T, D] in q's dtype.
Tensor decode_attention(const Tensor& q, const Tensor& k, const Tensor& v, const DecodeAttentionArgs& args);

}  // namespace sparrow::attn
