// Hierarchical decode: the geometry and layout of the model's length seq_len, as the forward
// builds them; the keys K' = [cached fine keys | level summaries] made by the forward's own
// with_summaries over the cache padded to seq_len. The padding (zeros past the cached positions)
// only enters summaries that cover a position ≥ first + T; those have key_last ≥ that position,
// so no query decoded here sees them (a summary is visible only once wholly in the past) — every
// key a query does see is the forward's key, and its row of the layout is the forward's row.
#include "attention/backends/hierarchical.h"

#include "attention/kernels/decode_attention.h"
#include "framework/ops/ops.h"

namespace sparrow::attn {
namespace {

// Rows [0, n) of the cache, then zeros up to `len`.
Tensor padded(const Tensor& cache, int64_t n, int64_t len) {
  const Tensor rows = slice(cache, 2, 0, n);
  if (n == len) return rows;
  return concat({rows, zeros({cache.size(0), cache.size(1), len - n, cache.size(3)}, cache.dtype(), cache.device())}, 2);
}

}  // namespace

Tensor HierarchicalAttention::decode(const DecodeCall& call) {
  check_decode_call("hierarchical attention", call);
  prepare(call.seq_len, /*causal=*/true);
  const int64_t n = call.first + call.q.size(2);
  DecodeAttentionArgs args;
  args.layout = layout_.get();
  args.scale = cfg_.softmax_scale;
  args.key_last = key_last_;
  args.first = call.first;
  return decode_attention(call.q, with_summaries(padded(call.k, n, call.seq_len), geo_),
                          with_summaries(padded(call.v, n, call.seq_len), geo_), args);
}

}  // namespace sparrow::attn
