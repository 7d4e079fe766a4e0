// sm_90a (Hopper) block attention: TMA + mbarrier pipeline + wgmma, warp-specialised; forward in
// block_attention_sm90.cu, backward in block_attention_sm90_bwd.cu. Included only from .cu files.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "attention/kernels/cuda/block_attention_walk.cuh"
#include "attention/kernels/cuda/sm90_dq_sums.h"

namespace sparrow::attn::cuda {

constexpr int kSm90Block = 128;  // query rows per CTA = keys per tile = the layout block it serves

struct Sm90Forward {
  const void* q = nullptr;  // bf16 [B·H, nq, d]
  const void* k = nullptr;  // bf16 [B·H, nk, d]
  const void* v = nullptr;
  void* out = nullptr;  // bf16 [B, H, nq, d] at out_strides (elements; d contiguous)
  struct {
    int64_t batch = 0, head = 0, row = 0;
  } out_strides;
  float* lse = nullptr;  // f32 [B·H, nq], natural log; −∞ for a row that sees nothing
  int64_t bh = 0, heads = 1, nq = 0, nk = 0;
  int d = 0;
  float scale_log2 = 0;
  bool causal = false;
  LayoutView view;                  // row_ptr == nullptr: dense; else block == kSm90Block
  const int32_t* lists = nullptr;   // per row: partial blocks then full blocks (indexed like col_idx)
  const int32_t* counts = nullptr;  // [nh][nqb][2]: partial count, total count
  // Set: the persistent grid (sm_count() CTAs, or ctas if > 0) taking rows from this counter, which
  // sm90_forward zeroes on the stream; null: a CTA a (batch·head, query block) row.
  int32_t* work_counter = nullptr;
  int ctas = 0;
};

// The backward's inputs (block_attention_sm90_bwd.cu): q, k, v, dout as for the forward, and the
// row statistics of attn_bwd_prep — LSE₂ = LSE·log₂e (+∞ for a row that sees nothing and for the
// padding rows) and Di = rowsum(dO ∘ O), both f32 [B·H, nq_pad] with nq_pad a multiple of 64.
// Writes dq (bf16 [B·H, nq, d]), dk, dv (bf16 [B·H, nk, d]): every element, zeros where nothing is seen.
// dq_accum set (f32, sm90_dq_sums_floats of them, any contents): one pass, each tile's dQ share
// added into it by bulk reduce-adds (5 GEMMs a tile, not bit-reproducible); null: two deterministic
// passes (7 GEMMs a tile).
struct Sm90Backward {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const void* dout = nullptr;
  const float* lse2 = nullptr;
  const float* di = nullptr;
  void* dq = nullptr;
  void* dk = nullptr;
  void* dv = nullptr;
  float* dq_accum = nullptr;
  bool turns = false;            // one pass: the consumer warpgroups issue their GEMMs in turns (ping-pong)
  bool kv_in_registers = false;  // one pass, D 64: K and V as the score GEMMs' register operands
  // Set: the dK/dV pass on the persistent grid (as Sm90Forward's; zeroed by sm90_backward).
  int32_t* work_counter = nullptr;
  // Set (with work_counter): room for bh · ceil(nk / 128) ints, where sm90_backward puts the order
  // the persistent grid takes the key blocks in (dkdv_order_kernel); null: key block-major.
  int32_t* order = nullptr;
  int ctas = 0;
  int64_t bh = 0, heads = 1, nq = 0, nk = 0, nq_pad = 0;
  int d = 0;
  float scale = 0, scale_log2 = 0;
  bool causal = false;
  LayoutView view;  // row_ptr == nullptr: dense; else block == kSm90Block, with the transpose (col_ptr)
};

// Whether this build has the kernel (CUTLASS headers found at configure time).
bool sm90_built();
// Fills lists / counts for a layout (view.row_ptr != nullptr) on the stream.
void sm90_build_lists(const LayoutView& view, int64_t nq, int64_t nk, bool causal, int32_t* lists, int32_t* counts,
                      cudaStream_t stream);
// Launches the forward (d 64 or 128, no key_last); the caller has checked the shape.
void sm90_forward(const Sm90Forward& f, cudaStream_t stream);
// Launches the backward (nq, nk > 0): a dK/dV pass over key blocks (with dQ's sums when one pass),
// then a dQ pass over query blocks (two passes) or dQ from the sums (one pass).
void sm90_backward(const Sm90Backward& b, cudaStream_t stream);

}  // namespace sparrow::attn::cuda
