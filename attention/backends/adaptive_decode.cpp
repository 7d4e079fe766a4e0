// Adaptive decode. The forward's selection for query block r scores key blocks by the mean of
// the block's queries, so in a forward over a length-N sequence the row of a position p inside a
// block also depends on the queries after p in that block: a model that has not generated them
// yet cannot reproduce that. What it can reproduce exactly is the forward over the prefix it
// holds, [0, first + T), whose last block is ragged and pooled over its rows so far (the row
// budgets and the past blocks' pooled keys do not depend on the length). Decode is that forward:
//   - the call must start at r's first position (decode_recompute_from), so q holds every query
//     of the block so far, and the model recomputes the block's rows at each new token;
//   - select_adaptive_layout itself runs on [zeros for the rows before first | q] against the
//     cached keys [0, first + T): row r sees the same pooled query and key blocks as in the
//     prefix's forward (the rows before first are selected from zeros and not used);
//   - the rows of r attend through that layout row, keys j ≤ p.
// Once a block is complete its rows equal the forward's at any length ≥ its end, which is what
// every position of a training sequence but those of its last partial block saw.
#include "attention/backends/adaptive.h"

#include "attention/kernels/decode_attention.h"
#include "framework/autograd/node.h"
#include "framework/ops/ops.h"

namespace sparrow::attn {

int64_t AdaptiveAttention::decode_recompute_from(int64_t pos, int64_t) { return pos - pos % cfg_.block_size; }

Tensor AdaptiveAttention::decode(const DecodeCall& call) {
  const char* op = "adaptive attention";
  check_decode_call(op, call);
  SPARROW_CHECK(call.first % cfg_.block_size == 0, op, " decode: queries from position ", call.first,
                ", which is not the start of a query block of ", cfg_.block_size,
                " (the pooled query needs the whole block so far; see decode_recompute_from)");
  NoGradGuard no_grad;
  const int64_t B = call.q.size(0), H = call.q.size(1), D = call.q.size(3), n = call.first + call.q.size(2);
  const Tensor q_prefix =
      call.first == 0 ? call.q : concat({zeros({B, H, call.first, D}, call.q.dtype(), call.q.device()), call.q}, 2);
  const Tensor k_prefix = slice(call.k, 2, 0, n), v_prefix = slice(call.v, 2, 0, n);
  const BlockLayout layout =
      select_adaptive_layout(q_prefix, k_prefix, cfg_.adaptive, cfg_.sparsity, cfg_.block_size, /*causal=*/true);
  DecodeAttentionArgs args;
  args.layout = &layout;
  args.scale = cfg_.softmax_scale;
  args.first = call.first;
  return decode_attention(call.q, k_prefix, v_prefix, args);
}

}  // namespace sparrow::attn
