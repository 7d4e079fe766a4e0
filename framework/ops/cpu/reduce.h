// CPU kernels of the reductions. The front end describes the input as two index spaces, each
// (shape, strides) in elements from a.offset(): the kept dims (row-major order of the output)
// and the reduced dims. `out` is contiguous with numel = Π kept_shape. Accumulation in double.
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::cpu {

// out[o] = scale · Σ_r a[kept(o) + red(r)]
void sum(const Tensor& a, const Shape& kept_shape, const Shape& kept_strides, const Shape& red_shape,
         const Shape& red_strides, double scale, Tensor& out);

// out[o] = max_i a[kept(o) + i·stride], i < n (n ≥ 1); idx (I32, contiguous like out) gets the
// first i that attains it (NaN counts as the maximum, so it propagates).
void max(const Tensor& a, const Shape& kept_shape, const Shape& kept_strides, int64_t n, int64_t stride, Tensor& out,
         Tensor& idx);

// grad_in (contiguous [outer, n, inner], zero on entry) gets g (contiguous [outer, inner]) at
// the positions idx picked: grad_in[o, idx[o, i], i] = g[o, i].
void max_backward(const Tensor& g, const Tensor& idx, int64_t outer, int64_t n, int64_t inner, Tensor& grad_in);

}  // namespace sparrow::cpu
