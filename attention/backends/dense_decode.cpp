// Dense decode: each new query sees every cached key up to its own position.
#include "attention/backends/dense.h"
#include "attention/kernels/decode_attention.h"

namespace sparrow::attn {

Tensor DenseAttention::decode(const DecodeCall& call) {
  check_decode_call("dense attention", call);
  DecodeAttentionArgs args;
  args.block_size = cfg_.block_size;
  args.scale = cfg_.softmax_scale;
  args.first = call.first;
  return decode_attention(call.q, call.k, call.v, args);
}

}  // namespace sparrow::attn
