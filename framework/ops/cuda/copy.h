// Same-GPU copy with any strides and any dtype pair (the cast and restride in one pass).
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::cuda {
void copy_strided(Tensor& dst, const Tensor& src);
}
