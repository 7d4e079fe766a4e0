// Dense softmax attention through cuDNN's fused SDPA, as one autograd node (forward saves O and
// the softmax statistics; backward is cuDNN's SDPA backward). The dense backend's GPU path.
// q, k, v: bf16 [B, H, N, D] on one CUDA device, any strides (made contiguous). scale 0 means
// 1/sqrt(D). Causal: key j visible to query i iff j ≤ i. Throws sparrow::Error in a build without
// CUDA, or for a shape cuDNN cannot run (check kernels/cuda/cudnn_sdpa.h's
// cudnn_sdpa_supported() first).
#pragma once
#include "framework/core/tensor.h"

namespace sparrow::attn {

Tensor cudnn_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale = 0.0);

}  // namespace sparrow::attn
