// Helpers shared by the fused ops' front ends (norm, softmax, cross_entropy, dropout, rope).
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::fused {

// t itself when contiguous, else a contiguous copy (no autograd: the fused ops record one node
// on their original inputs and hand back gradients in those inputs' shapes).
inline Tensor dense(const Tensor& t) {
  Tensor d = t.detach();
  if (d.is_contiguous()) return d;
  Tensor o = empty(d.shape(), d.dtype(), d.device());
  copy_(o, d);
  return o;
}

// An incoming gradient as a contiguous tensor of the dtype the backward kernel reads (a
// gradient may arrive in another float dtype, e.g. f32 from a consumer that upcast).
inline Tensor dense_as(const Tensor& g, DType dtype) {
  Tensor d = g.detach();
  if (d.is_contiguous() && d.dtype() == dtype) return d;
  Tensor o = empty(d.shape(), dtype, d.device());
  copy_(o, d);
  return o;
}

// Per-row statistics (mean, rstd, logsumexp) and the cross-entropy loss: f64 for f64 inputs,
// f32 otherwise (bf16 inputs accumulate in f32 and keep f32 statistics).
inline DType stats_dtype(DType t) { return t == DType::F64 ? DType::F64 : DType::F32; }

}  // namespace sparrow::fused
