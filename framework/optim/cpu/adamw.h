// AdamW over flat fp32 buffers on the host: one OpenMP loop (see adamw_kernel_args.h for the
// math). compute_copy, when not null, receives bf16(p) after the update.
#pragma once
#include "framework/core/bf16.h"
#include "framework/optim/adamw_kernel_args.h"

namespace sparrow::cpu {

void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, bf16* compute_copy,
                const optim::AdamWKernelArgs& a);

}  // namespace sparrow::cpu
