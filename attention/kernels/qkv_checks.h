// The input checks block_attention and decode_attention share: q [B, H, Nq, D], k and v
// [B, H, Nk, D], one dtype, one device. Each caller adds its own dtype list and arguments.
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::attn {

// Throws sparrow::Error naming `op` and the three shapes.
inline void check_qkv_tensors(const char* op, const Tensor& q, const Tensor& k, const Tensor& v) {
  check_dim(op, q, 4);
  check_dim(op, k, 4);
  check_dim(op, v, 4);
  check_same_dtype(op, q, k);
  check_same_dtype(op, q, v);
  check_same_device(op, q, k);
  check_same_device(op, q, v);
  SPARROW_CHECK(k.shape() == v.shape() && q.size(0) == k.size(0) && q.size(1) == k.size(1) && q.size(3) == k.size(3),
                op, ": q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()),
                " (expected [B, H, Nq, D], [B, H, Nk, D], [B, H, Nk, D])");
}

}  // namespace sparrow::attn
