// CUDA entry points of the block-attention kernel (block_attention.cu). Same contract as the CPU
// kernel (kernels/cpu/block_attention.h): q, k, v, out, lse, dout contiguous on one CUDA device;
// args.scale already resolved (> 0). No CUDA types here, so any .cpp may include it.
#pragma once
#include "attention/kernels/block_attention.h"
#include "attention/kernels/block_attention_outputs.h"

namespace sparrow::attn::cuda {

// Returns O (q's dtype, or f32 where the kernel keeps it wider) and LSE [B, H, Nq] (f32).
BlockAttentionForward block_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                              const BlockAttentionArgs& args);
// Gradients in q/k/v's dtype.
BlockAttentionGrads block_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                             const Tensor& lse, const Tensor& dout, const BlockAttentionArgs& args);

// Whether the sm_90a forward can serve the current device (built with CUTLASS and a compute
// capability 9.0 device); which kernel a call takes also depends on SPARROW_BLOCK_ATTN_KERNEL
// and the shape (block_attention.cu).
bool block_attention_sm90_available();

}  // namespace sparrow::attn::cuda
