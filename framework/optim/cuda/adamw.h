// AdamW over flat fp32 buffers on the GPU: one grid-stride kernel on sparrow::cuda::stream()
// (see adamw_kernel_args.h for the math). compute_copy, when not null, is a device bf16 buffer
// that receives bf16(p) after the update (the weights the forward pass computes with).
#pragma once
#include "framework/core/bf16.h"
#include "framework/optim/adamw_kernel_args.h"

namespace sparrow::cuda {

void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, bf16* compute_copy,
                const optim::AdamWKernelArgs& a);

}  // namespace sparrow::cuda
