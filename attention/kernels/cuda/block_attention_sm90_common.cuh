// What the sm_90a block-attention kernels share (block_attention_sm90.cu: forward;
// block_attention_sm90_bwd.cu: backward): CuTe types, the global-memory view TMA reads, the
// transposed shared-memory view a GEMM contracting over tile rows needs, the accumulator's
// rows × columns view, and the shared-memory limit. Compiled only with CUTLASS (SPARROW_WITH_CUTLASS).
#pragma once
#include <cutlass/arch/barrier.h>
#include <cutlass/arch/reg_reconfig.h>
#include <cutlass/cutlass.h>
#include <cutlass/numeric_types.h>

#include <atomic>
#include <cstdint>
#include <cute/tensor.hpp>

#include "attention/kernels/cuda/block_attention_sm90_items.cuh"
#include "attention/kernels/cuda/exp2_ftz.cuh"
#include "framework/cuda/runtime.h"

namespace sparrow::attn::cuda::sm90 {

using namespace cute;
using Elt = cutlass::bfloat16_t;
using Bar = cutlass::arch::ClusterBarrier;
using TxBar = cutlass::arch::ClusterTransactionBarrier;

// A position in the ring of S shared-memory stages: the stage and the parity of its barriers' phase.
template <int S>
struct Ring {
  int stage = 0;
  uint32_t phase = 0;
  __device__ void advance() {
    if (++stage == S) {
      stage = 0;
      phase ^= 1;
    }
  }
};

// The work items of a grid, handed out in index order: a CTA's first item is its block index;
// with a counter (an int zeroed before the launch: the persistent grid, one CTA an SM) each next
// one is taken from it, so a CTA that finishes early takes more and the longest items, put first,
// start first; without one the grid has a CTA an item. With a plan (block_attention_sm90_plan.cu)
// the n-th index taken stands for plan entry n (plan_entry), and an entry of item −1 ends the
// work. −1: no more.
struct WorkQueue {
  int* counter = nullptr;
  int items = 0;
  const int32_t* plan = nullptr;
  __device__ int next(int n) const {
    int t = static_cast<int>(blockIdx.x);
    if (n > 0) {
      if (counter == nullptr) return -1;
      t = atomicAdd(counter, 1) + static_cast<int>(gridDim.x);
    }
    if (t >= items || (plan != nullptr && plan[4 * static_cast<int64_t>(t)] < 0)) return -1;
    return t;
  }
};

// The [n, D] rows of every (batch, head) as one (n, D, B·H) tensor: the source of every TMA load.
template <int D>
auto gmem_tensor(const Elt* p, int n, int bh) {
  return make_tensor(make_gmem_ptr(p), make_shape(n, Int<D>{}, bh),
                     make_stride(static_cast<int64_t>(D), _1{}, static_cast<int64_t>(n) * D));
}

// A TMA load of (Rows × D) tiles of gmem_tensor<D> into the (Rows × D) smem layout SL.
template <int Rows, int D, class SL>
auto make_tma_rows(const Elt* p, int n, int bh, SL smem_layout) {
  return make_tma_copy(SM90_TMA_LOAD{}, gmem_tensor<D>(p, n, bh), smem_layout, Shape<Int<Rows>, Int<D>>{}, _1{});
}

// (D × Rows × S) view of a (Rows × D × S) K-major (row-major, swizzled) smem layout: the B operand,
// MN-major, of a GEMM that contracts over the tile's rows (P·V, Pᵀ·dO, dSᵀ·Q, dS·K), read straight
// from the tile TMA wrote.
template <class SL, int Rows, int D, int S>
using TransposedSmem =
    decltype(composition(SL{}, make_ordered_layout(Shape<Int<D>, Int<Rows>, Int<S>>{}, Step<_2, _1, _3>{})));

// ((2, 2, V), MMA_M, MMA_N) accumulator layout → ((2, MMA_M), (2, V, MMA_N)): rows × columns.
template <class L>
CUTE_HOST_DEVICE auto rowcol(L l) {
  auto l0 = get<0>(l);
  return make_layout(make_layout(get<1>(l0), get<1>(l)), make_layout(get<0>(l0), get<2>(l0), get<2>(l)));
}

// Accumulator (f32) → bf16 A-fragment of the next GEMM, in place order: a wgmma accumulator's
// element order equals the register-A fragment's for the same (rows × k) tile.
template <class Acc, class Frag>
__device__ __forceinline__ void to_bf16_fragment(const Acc& acc, Frag& frag) {
  CUTLASS_PRAGMA_UNROLL
  for (int e = 0; e < size(acc); e += 2) {
    const __nv_bfloat162 b2 = __float22bfloat162_rn(make_float2(acc(e), acc(e + 1)));
    frag(e) = Elt::bitcast(reinterpret_cast<const uint16_t*>(&b2)[0]);
    frag(e + 1) = Elt::bitcast(reinterpret_cast<const uint16_t*>(&b2)[1]);
  }
}

// Hides the scores of the pairs the mask removes by setting them to −∞: keys at or past nk and,
// causal, keys after their query. `query_key(r, c)` gives element (r, c)'s (query, key) (the
// forward's and the dQ pass's rows are queries, the dK/dV pass's keys). Then exp2 of the score
// (scaled, less the row's max or LSE₂) is exactly 0 with no select in the exponent's loop: LSE₂ is
// finite or +∞ (a row that sees nothing, bwd prep), never −∞, so −∞ − LSE₂ stays −∞. Run only on
// partial tiles, as a pass of its own: with the select inside the exponent's loop, ptxas gave
// every score of every tile a branch around the mask's compares and a predicated reload of the
// scale from the constant bank (a full tile's backward step ~460 instructions a thread, now
// 159–222: bench/HOPPER_NOTES.md, session 21; scripts/sass-stats.sh counts them).
template <class ScoresRC, class QueryKey>
__device__ __forceinline__ void mask_scores(ScoresRC& s_rc, QueryKey query_key, int nk, bool causal) {
  CUTLASS_PRAGMA_UNROLL
  for (int r = 0; r < size<0>(s_rc); ++r) {
    CUTLASS_PRAGMA_UNROLL
    for (int c = 0; c < size<1>(s_rc); ++c) {
      const int2 qk = query_key(r, c);
      if (qk.y >= nk || (causal && qk.y > qk.x)) s_rc(r, c) = -INFINITY;
    }
  }
}

// dst[i] += src[i], `bytes` / 4 floats (a multiple of 16 bytes, both 16-byte aligned): one bulk
// reduce-add, shared → global, issued by the calling thread into its bulk group (commit with
// tma_store_arrive; tma_store_wait<0> waits until the source has been read). The additions are
// performed at L2 in one pass over the run, not one atomic a float2.
__device__ __forceinline__ void bulk_reduce_add_f32(float* dst, const float* src, int bytes) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(dst),
               "r"(cast_smem_ptr_to_uint(src)), "r"(bytes)
               : "memory");
#endif
}

// Raises a kernel's dynamic shared-memory limit once per device (`done` holds a bit per device).
template <class Kernel>
void raise_smem_limit(Kernel kernel, int bytes, std::atomic<uint64_t>& done) {
  const int dev = sparrow::cuda::current_device();
  const uint64_t bit = dev >= 0 && dev < 64 ? uint64_t{1} << dev : 0;
  if (bit != 0 && (done.load() & bit) != 0) return;
  SPARROW_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  done.fetch_or(bit);
}

}  // namespace sparrow::attn::cuda::sm90
