// The softmax's exponential, shared by the mma.sync (sm_80) and sm_90a block-attention kernels.
#pragma once

namespace sparrow::attn::cuda {

// 2^x by one MUFU.EX2, subnormal results flushed to zero. exp2f keeps them, at the price of a
// compare and two predicated multiplies around every MUFU; a probability below 2⁻¹²⁶ of the row's
// largest is nothing next to the row's sum (≥ 1), and P goes to bf16 anyway. 2^(−∞) is +0, which
// the masks rely on (hidden scores are set to −∞). On an H100 the sm_90a backwards ran 1.01–1.24×
// faster with it than with exp2f (bench/RESULTS.md, 2026-12-06).
__device__ __forceinline__ float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

}  // namespace sparrow::attn::cuda
