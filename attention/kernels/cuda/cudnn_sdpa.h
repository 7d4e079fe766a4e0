// Dense attention through cuDNN's fused SDPA (flash) graphs — the fastest dense path on
// Hopper, and the yardstick our block-sparse kernel is measured against. No CUDA types here.
// q, k, v: contiguous bf16 [B, H, N, D] on one CUDA device (same N for q and k). Causal means
// key j is visible to query i iff j ≤ i (cuDNN's top-left diagonal alignment).
// Graphs are built once per (device, B, H, N, D, causal, scale, direction) and cached with their
// workspace size; one cuDNN handle per device runs on sparrow::cuda::stream(); the workspace
// comes from the caching allocator.
#pragma once
#include "attention/kernels/block_attention_outputs.h"
#include "framework/core/tensor.h"

namespace sparrow::attn::cuda {

// True when this build has CUDA, cuDNN ≥ 9 is loaded, and q (bf16 on CUDA, head dim a multiple
// of 8 up to 128) is a shape cuDNN's SDPA graphs accept, forward and backward (checked by
// building both graphs, which are then cached). Never throws.
bool cudnn_sdpa_supported(const Tensor& q, bool causal);

// O (bf16, q's shape, stored as [B, N, H, D]: a permuted view, so merging heads for the output
// projection is free) and the softmax statistics LSE (f32 [B, H, N, 1], natural log).
BlockAttentionForward cudnn_sdpa_forward(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale);

// dQ, dK, dV (bf16, contiguous) from the forward's out and lse and the output gradient dout (any
// float dtype and layout; read in place when it is bf16 in O's [B, N, H, D] layout).
BlockAttentionGrads cudnn_sdpa_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                        const Tensor& lse, const Tensor& dout, bool causal, double scale);

}  // namespace sparrow::attn::cuda
