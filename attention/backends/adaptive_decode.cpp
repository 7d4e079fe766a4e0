// Adaptive decode. Under causal masking the selection of query block r reads the previous
// block's query mean and the key means of blocks before r (adaptive.h), all wholly before each
// position of block r; and the causal row budgets are those of rows 0..r whatever the length.
// So selecting over the prefix [0, first + T) — the cached queries and keys — gives each new row
// the layout row the forward over any longer sequence gives it, and its attention over that row
// (keys j ≤ p) is the forward's.
#include "attention/backends/adaptive.h"

#include "attention/kernels/decode_attention.h"
#include "framework/autograd/node.h"
#include "framework/ops/ops.h"

namespace sparrow::attn {

Tensor AdaptiveAttention::decode(const DecodeCall& call) {
  const char* op = "adaptive attention";
  check_decode_call(op, call);
  SPARROW_CHECK(call.q_cache.defined(), op, " decode: needs the query cache (the selection reads earlier queries)");
  NoGradGuard no_grad;
  const int64_t n = call.first + call.q.size(2);
  const Tensor q_prefix = slice(call.q_cache, 2, 0, n), k_prefix = slice(call.k, 2, 0, n),
               v_prefix = slice(call.v, 2, 0, n);
  const BlockLayout layout =
      select_adaptive_layout(q_prefix, k_prefix, cfg_.adaptive, cfg_.sparsity_at(call.step), cfg_.block_size,
                             /*causal=*/true);
  DecodeAttentionArgs args;
  args.layout = &layout;
  args.scale = cfg_.softmax_scale;
  args.first = call.first;
  return decode_attention(call.q, k_prefix, v_prefix, args);
}

}  // namespace sparrow::attn
