// Mean pooling of keys/queries over runs of tokens, shared by the backends that summarise blocks
// (hierarchical: pooled summary keys/values; adaptive: pooled q and k that score key blocks).
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::attn {

// [B, H, N, D] → [B, H, ceil(N/group), D]: the mean of each run of `group` tokens; a ragged last
// run is averaged over its own tokens only. Built from framework ops, so gradients flow back.
Tensor pool_means(const Tensor& x, int64_t group);

}  // namespace sparrow::attn
