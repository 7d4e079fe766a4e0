// The decode contract's checks, and the refusal of a backend that has no decode.
#include "attention/attention.h"

namespace sparrow::attn {

void check_decode_call(const char* op, const DecodeCall& call) {
  check_dim(op, call.q, 4);
  check_dim(op, call.k, 4);
  check_dim(op, call.v, 4);
  const Shape& q = call.q.shape();
  const Shape& k = call.k.shape();
  SPARROW_CHECK(call.k.shape() == call.v.shape() && q[0] == k[0] && q[1] == k[1] && q[3] == k[3], op, " decode: q ",
                shape_str(q), ", k ", shape_str(k), ", v ", shape_str(call.v.shape()),
                " (expected [B, H, T, D] and a cache [B, H, Nc, D])");
  SPARROW_CHECK(call.first >= 0 && call.first + q[2] <= k[2] && call.first + q[2] <= call.seq_len, op,
                " decode: queries at positions [", call.first, ", ", call.first + q[2], ") need a cache of at least ",
                call.first + q[2], " positions (has ", k[2], ") within the sequence length ", call.seq_len);
  check_same_device(op, call.q, call.k);
  check_same_device(op, call.q, call.v);
  check_same_dtype(op, call.q, call.k);
  check_same_dtype(op, call.q, call.v);
  if (call.q_cache.defined())
    SPARROW_CHECK(call.q_cache.shape() == call.k.shape(), op, " decode: the query cache ",
                  shape_str(call.q_cache.shape()), " is not shaped like the key cache ", shape_str(k));
}

Tensor Attention::decode(const DecodeCall&) {
  fail("attention backend '", name(), "' has no incremental decode (sampling with a KV cache)");
}

}  // namespace sparrow::attn
