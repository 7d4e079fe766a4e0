// Same-GPU copy with any strides and any dtype pair (the cast and restride in one pass).
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::cuda {
void copy_strided(Tensor& dst, const Tensor& src);
// dst += src (same GPU, same shape, any strides, src of any float dtype, converted as it is read).
void accumulate_strided(Tensor& dst, const Tensor& src);
}  // namespace sparrow::cuda
