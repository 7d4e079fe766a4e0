// CPU block-attention kernel (FlashAttention-style, Eigen tiles, OpenMP over batch·head·block).
// Inputs contiguous on the CPU: q [B, H, Nq, D], k/v [B, H, Nk, D], f32 / f64 / bf16 (bf16
// computed in f32); args.scale resolved (> 0) and args checked by block_attention().
#pragma once
#include "attention/kernels/block_attention.h"
#include "attention/kernels/block_attention_outputs.h"

namespace sparrow::attn::cpu {

BlockAttentionForward block_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                              const BlockAttentionArgs& args);
// out and lse as the forward returned them; dout: O's shape, any floating dtype.
BlockAttentionGrads block_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                             const Tensor& lse, const Tensor& dout, const BlockAttentionArgs& args);

}  // namespace sparrow::attn::cpu
