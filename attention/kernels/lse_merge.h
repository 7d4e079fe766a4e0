// Merging two partial attentions of one query over disjoint key sets into the attention over
// their union, from each part's output and log-sum-exp (what ring attention does per ring step):
//   lse = log(e^lse_a + e^lse_b),   O = e^(lse_a − lse)·O_a + e^(lse_b − lse)·O_b.
// This is exactly the one softmax over all keys, never a sum of separate softmaxes. A row that
// sees no key in a part has lse = −inf there and takes nothing from it; a row that sees no key
// at all stays (O = 0, lse = −inf).
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::attn {

// out_acc [R, D] and lse_acc [R] (any leading shape with the same row count), f32 or f64,
// contiguous, updated in place; out_part: the same shape in any float dtype, lse_part: lse_acc's
// shape and dtype. Both on one device.
void merge_by_lse(Tensor& out_acc, Tensor& lse_acc, const Tensor& out_part, const Tensor& lse_part);

namespace cpu {
void merge_by_lse(Tensor& out_acc, Tensor& lse_acc, const Tensor& out_part, const Tensor& lse_part);
}
namespace cuda {
void merge_by_lse(Tensor& out_acc, Tensor& lse_acc, const Tensor& out_part, const Tensor& lse_part);
}

}  // namespace sparrow::attn
