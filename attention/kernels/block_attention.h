// Generalised block attention: the one kernel behind dense, block_sparse, hierarchical and
// adaptive. For each query block it runs one online softmax over every key it may see:
//   S = scale·Q Kᵀ over the active key blocks; m, l, acc updated per block; O = acc / l;
//   LSE = m + log l saved for backward.
// Backward recomputes P = exp(S − LSE); Di = rowsum(dO ∘ O); dS = P ∘ (dO Vᵀ − Di);
// dQ = dS K·scale, dK = dSᵀ Q·scale, dV = Pᵀ dO (dK, dV walk the layout's transpose).
//
// Keys may differ from queries in number (pooled summary keys appended after the fine keys).
// Causal rule, per element: key j is visible to query position p iff key_last[j] ≤ p, where
// key_last[j] is the last token position key j summarises (j itself for an ordinary key).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "attention/kernels/block_attention_outputs.h"
#include "attention/layout/block_layout.h"
#include "framework/core/tensor.h"

namespace sparrow::attn {

namespace cuda {
struct DeviceLayout;  // kernels/cuda/device_layout.cuh
}

struct BlockAttentionArgs {
  // Active (query block, key block) pairs. Null: dense — every key block (causal: those with
  // any visible key), never materialising a layout.
  const BlockLayout* layout = nullptr;
  int64_t block_size = 64;  // used when layout is null
  bool causal = false;
  double scale = 0.0;  // 0: 1/sqrt(D)
  // Per key (size Nk) when keys are not plain positions; empty: key_last[j] = j.
  std::vector<int64_t> key_last;
  // Optional owner of *layout: the recorded backward holds it, so a layout the caller (or the
  // layout cache) drops between forward and backward stays alive for the backward.
  std::shared_ptr<const BlockLayout> layout_owner;
  // Instead of `layout`, one already on the GPU (CUDA tensors only), as adaptive selection on the
  // device builds it (kernels/cuda/adaptive_select.h); block_size must be its block size.
  std::shared_ptr<const cuda::DeviceLayout> device_layout;
  // The caller reads O token-major, as [B, Nq, H, D] (the out-projection after permute(0, 2, 1, 3)):
  // a kernel that can returns O as a [B, H, Nq, D] view of such storage, so the caller's permute
  // is contiguous and copies nothing. A hint: other kernels return O contiguous.
  bool token_major_out = false;
};

// q: [B, H, Nq, D], k/v: [B, H, Nk, D]. Returns O [B, H, Nq, D], recorded for autograd as one
// node; dispatches to kernels/cpu/block_attention.cpp or kernels/cuda/block_attention.cu.
// A query row that sees no key at all gets O = 0 (and LSE = −inf; it passes no gradient).
Tensor block_attention(const Tensor& q, const Tensor& k, const Tensor& v, const BlockAttentionArgs& args);

// The same kernels without the autograd node, for callers that combine partial results: ring
// attention merges the forwards of several key shards by their LSE, and sums the backwards
// given the merged O and LSE (P = exp(S − LSE) is then each shard's share of the one softmax).
// Inputs are checked as above; the forward's O is f32 for bf16 on the CPU (see the outputs).
BlockAttentionForward block_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                              const BlockAttentionArgs& args);
BlockAttentionGrads block_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                             const Tensor& lse, const Tensor& dout, const BlockAttentionArgs& args);

// Bytes of device memory the backward holds besides its inputs, outputs and gradients, for B·H =
// bh rows of nq queries at head size d: on a GPU, the sm_90a one pass's f32 dQ sums (at most 2 GiB
// a launch, kernels/cuda/sm90_dq_sums.h); nothing on the CPU. For memory estimates (train/memory.cpp).
double block_attention_backward_scratch_bytes(int64_t bh, int64_t heads, int64_t nq, int64_t d, Device device);

}  // namespace sparrow::attn
