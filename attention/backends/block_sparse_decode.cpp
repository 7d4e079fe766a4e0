// Block-sparse decode: a new query at position p sees the key blocks of its query block's row in
// the layout the forward uses at the model's length (get_layout at seq_len, at the sparsity of
// call.step: the schedule's value at the weights' last training step), and inside them the keys
// j ≤ p. That row is what position p saw in training.
#include "attention/backends/block_sparse.h"
#include "attention/kernels/decode_attention.h"

namespace sparrow::attn {

Tensor BlockSparseAttention::decode(const DecodeCall& call) {
  check_decode_call("block_sparse attention", call);
  at_target_.sparsity = cfg_.sparsity_at(call.step);
  const std::shared_ptr<const BlockLayout> layout =
      get_layout(at_target_, call.seq_len, call.q.size(1), /*causal=*/true);
  DecodeAttentionArgs args;
  args.layout = layout.get();
  args.scale = cfg_.softmax_scale;
  args.first = call.first;
  return decode_attention(call.q, call.k, call.v, args);
}

}  // namespace sparrow::attn
