// sm_90a block-attention backward, two passes on the forward's machinery (TMA into an mbarrier
// ring, a producer warpgroup, two consumer warpgroups on wgmma; block_attention_sm90.cu):
//
//   dK/dV pass — CTA = one key block (128 keys; 64 per consumer warpgroup) of one (batch, head).
//     K and V are loaded once; the layout's COLUMN (the transpose CSR) gives the query blocks that
//     see the key block, each streamed as two 64-row tiles of Q and dO (TMA) with their LSE₂ and
//     Di (bulk copies on the same barrier). Per tile, with keys as rows:
//       Sᵀ = K Qᵀ, dPᵀ = V dOᵀ                (wgmma 64×64×16, both operands from smem)
//       Pᵀ = exp2(Sᵀ·scale·log₂e − LSE₂), dSᵀ = Pᵀ ∘ (dPᵀ − Di)   (mask on partial tiles only)
//       dV += Pᵀ dO, dK += dSᵀ Q              (wgmma register-A, dO and Q read MN-major)
//     then dK ·= scale. dK and dV stay in registers for the whole column: no atomics.
//   dQ pass — CTA = one query block (128 rows; 64 per consumer warpgroup). Q and dO are loaded
//     once; the layout's ROW gives the key blocks, each streamed as two 64-key tiles of K and V:
//       S = Q Kᵀ, dP = dO Vᵀ, P = exp2(S·scale·log₂e − LSE₂), dS = P ∘ (dP − Di), dQ += dS K,
//     then dQ ·= scale.
//
// S and dP are computed in both passes (7 tile GEMMs a tile pair): deterministic, and no f32
// [B·H, N, D] dQ buffer, the same trade the mma.sync backward makes (block_attention_mma.cuh).
// The one-pass variant (Sm90Backward::dq_accum set) does 5, as FlashAttention-3 does: the dK/dV
// pass also forms each tile's dQ share, transposed so that D is the GEMM's M and splits between
// the warpgroups (64 columns each at D = 128; at D = 64 they take alternate tiles):
//       dQᵀ[:, q0 .. q0+64) += Kᵀ · dSᵀ         (wgmma, dSᵀ through shared memory, Kᵀ read MN-major)
// staged in shared memory and added to f32 sums (sm90_dq_sums_at) by bulk reduce-adds (a warp's
// 16 columns each), then converted to bf16 · scale after. Float addition in arrival order: not
// bit-reproducible from run to run, hence both. Tiles are 64 wide along the streamed dimension so
// that the accumulators of D = 128 fit: dK, dV 64 + 64, Sᵀ and dPᵀ 16 + 16 and dQᵀ 32 f32 registers a thread.
//
// Masking follows classify_tile (block_attention_lists.h): a tile past the sequence or above the
// causal diagonal is skipped by producer and consumers alike; a partial tile gets the per-element
// rule key < nk and (not causal or key ≤ query); rows past nq have LSE₂ = +∞, so P = 0 there.
#include <cuda_bf16.h>

#include <algorithm>

#include "attention/kernels/cuda/block_attention_lists.h"
#include "attention/kernels/cuda/block_attention_sm90.h"
#include "framework/cuda/runtime.h"

#ifndef SPARROW_WITH_CUTLASS

namespace sparrow::attn::cuda {
void sm90_backward(const Sm90Backward&, cudaStream_t) {
  fail("block_attention: built without CUTLASS (no sm_90a kernel)");
}
bool sm90_band_layout_as_assumed() { return true; }  // no kernel to assume anything
}  // namespace sparrow::attn::cuda

#else

#include "attention/kernels/cuda/block_attention_sm90_common.cuh"

namespace sparrow::attn::cuda {
namespace sm90 {

constexpr int kBlock = kSm90Block;  // keys per dK/dV CTA, query rows per dQ CTA
constexpr int kHalf = 64;           // rows of a streamed tile (half a layout block)
// The one-pass dQ sums, f32 [B·H · nq_pad/64 tiles][D][64]: each 64-row tile transposed (dQᵀ, the
// order the dK/dV pass's accumulator holds), so that a warpgroup's 64-column band of a tile is one
// contiguous run (each warp's 16 columns of it added by one bulk reduce); rows swizzled within a
// column so that the staging copy's float2 stores spread over the banks (sm90_dq_sums.h).
// dq_from_sums_kernel reads them back.
// dS buffers of the one-pass dK/dV pass: a warpgroup writes tile t's while the other's wgmma may
// still read tile t − 2's (the dQᵀ of tile t − 1 runs in tile t's batch; see dkdv_kernel).
constexpr int kDsBuffers = 3;
static_assert(kSm90DqSumsRows == kHalf);

constexpr int kThreads = 384;  // producer warpgroup + 2 consumer warpgroups
// Used only in sm_90a device code (maybe_unused: the sm_80 pass compiles the kernels empty).
[[maybe_unused]] constexpr int kConsumerWarps = 8;
// The dK/dV pass's consumers read a stage's LSE₂ and Di with ordinary loads, so each thread
// releases the stage itself (one arrival a warp after __syncwarp is as ordered, but
// compute-sanitizer racecheck flags it against the next bulk copy into the stage).
[[maybe_unused]] constexpr int kConsumerThreads = 256;
// Named barriers of the one-pass dK/dV consumers (ids from 0; CUTLASS offsets them past its own):
// 0..3 "warpgroup w's dS of a tile of parity j is in", 4 + c consumer warpgroup c's turn to issue
// GEMMs (SPARROW_BLOCK_ATTN_BWD=sm90_bwd_pingpong).
[[maybe_unused]] constexpr int kDsReadyBar = 0, kTurnBar = 4;

// ---------------------------------------------------------------------------------------------
// dK/dV pass.

// What both passes share: a resident 128-row block (K, V or Q, dO) against streamed 64-row tiles.
template <int D>
struct Tiles {
  using SmemBlock = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<Elt>{}, Shape<Int<kBlock>, Int<D>>{}));
  template <int S>
  using SmemHalves = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<Elt>{}, Shape<Int<kHalf>, Int<D>, Int<S>>{}));
  // Block × tileᵀ, contracting D (Sᵀ = K Qᵀ, dPᵀ = V dOᵀ; S = Q Kᵀ, dP = dO Vᵀ); both from smem.
  using MmaScores = decltype(make_tiled_mma(
      GMMA::ss_op_selector<Elt, Elt, float, Shape<Int<kBlock>, Int<kHalf>, Int<D>>>(), Layout<Shape<_2, _1, _1>>{}));
  // The same with the block (K or V) as a register A operand (the dK/dV pass's kRegKV).
  using MmaScoresRegA = decltype(make_tiled_mma(
      GMMA::rs_op_selector<Elt, Elt, float, Shape<Int<kBlock>, Int<kHalf>, Int<D>>, GMMA::Major::K, GMMA::Major::K>(),
      Layout<Shape<_2, _1, _1>>{}));
  // Block rows × D, contracting the tile's rows (dV += Pᵀ dO, dK += dSᵀ Q; dQ += dS K): A from
  // registers, B the tile read MN-major.
  using MmaAccumulate = decltype(make_tiled_mma(
      GMMA::rs_op_selector<Elt, Elt, float, Shape<Int<kBlock>, Int<D>, Int<kHalf>>, GMMA::Major::K, GMMA::Major::MN>(),
      Layout<Shape<_2, _1, _1>>{}));
  static constexpr int kTileBytes = kHalf * D * 2;
  static constexpr int kBlockBytes = kBlock * D * 2;
};

// A column as the producer hands it to the consumers with its K/V buffer (written before the
// buffer's arrival, read after the wait, as TileNote): bh −1 once the grid's work is done; slot ≥ 0
// a chunk (its dK and dV to chunk slot `slot`); walks: whether any of its tiles is not skipped.
struct ColumnNote {
  int bh, kb, slot;
  bool walks;
};

// KVS: K/V buffers (1, or 2 so that the next column's K and V load while this one's tiles run;
// room for a second only at D 64: 210 of 227 KiB in the one pass).
template <int D, bool kOnePass, int KVS = 1>
struct DkdvCfg : Tiles<D> {
  // D = 128, one pass: dS's and dQᵀ's buffers (48 + 32 KiB) leave room for two.
  static constexpr int kStages = D == 64 ? 4 : kOnePass ? 2 : 3;
  using SmemLayoutKV = typename Tiles<D>::SmemBlock;
  using SmemLayoutQ = typename Tiles<D>::template SmemHalves<kStages>;
  using SmemLayoutQt = TransposedSmem<SmemLayoutQ, kHalf, D, kStages>;  // Qᵀ, dOᵀ for dK, dV
  // One pass only. dS of a tile as (query rows × keys), rows contiguous: the A operand of
  // dQ += dS·K, each warpgroup writing and reading its own 64 keys' columns. Two buffers, so a
  // warpgroup writes tile t+1's while the wgmma of tile t may still be reading.
  using SmemLayoutdS =
      decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<Elt>{}, Shape<Int<kHalf>, Int<kBlock>, Int<kDsBuffers>>{}));
  // The same bytes as (keys × query rows × 2), rows contiguous: where the dSᵀ accumulator goes,
  // by stmatrix (4 stores a thread a tile; element-wise stores' 16 addresses spill at D = 128).
  using SmemLayoutdSt =
      decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<Elt>{}, Shape<Int<kBlock>, Int<kHalf>, Int<kDsBuffers>>{}));
  // One pass: the tile's dQᵀ (D × 64 query rows) = Kᵀ (D × 128 keys) · dSᵀ (128 keys × 64 rows),
  // in 64-column bands of D. Band b's A is Kᵀ of K's b-th 64-column band (MN-major; chunk b of
  // SmemLayoutKV starts b · kBlock · 64 elements in: tile_to_shape lays a band's 128-row atoms
  // together), its B the tile's dS buffer (MN-major). A warpgroup computes whole bands over all 128
  // keys, so the two never add to the same sums (FlashAttention-3 swaps A and B the same way). The
  // accumulator is 32 registers beside dK's and dV's 64 + 64 at D = 128.
  static constexpr int kBand = 64;
  using SmemLayoutKt =
      TransposedSmem<decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<Elt>{}, Shape<Int<kBlock>, Int<kBand>>{})),
                     kBlock, kBand, 1>;
  using MmaDqT =
      decltype(make_tiled_mma(GMMA::ss_op_selector<Elt, Elt, float, Shape<Int<kBand>, Int<kHalf>, Int<kBlock>>,
                                                   GMMA::Major::MN, GMMA::Major::MN>()));

  static constexpr int kKvElems = cosize_v<SmemLayoutKV>;  // a K (or V) buffer; 16 KiB at D 64: 1024-aligned
  struct Smem {
    array_aligned<Elt, kKvElems * KVS, 1024> k;
    array_aligned<Elt, kKvElems * KVS, 1024> v;
    array_aligned<Elt, cosize_v<SmemLayoutQ>, 1024> q;
    array_aligned<Elt, cosize_v<SmemLayoutQ>, 1024> dout;
    alignas(16) float lse2[kStages][kHalf];  // bulk copies: 16-byte aligned, 256 bytes each
    alignas(16) float di[kStages][kHalf];
    alignas(8) uint64_t full_kv[KVS];  // K and V of a column
    uint64_t empty_kv[KVS];
    uint64_t full[kStages];  // TMA's bytes: Q and dO tiles, LSE₂ and Di
    uint64_t empty[kStages];
    ColumnNote column[KVS];  // the column whose K and V are in each buffer
    TileNote tile[kStages];  // the tile in each stage
  };
  struct SmemOnePass : Smem {
    array_aligned<Elt, cosize_v<SmemLayoutdS>, 1024> ds;
    // A warpgroup's dQᵀ band (64 columns × 64 rows, f32, DqSums order), read by its warps' bulk
    // reduce-adds.
    alignas(128) float dq[2][kBand * kHalf];
  };
};

template <int D>
auto make_tma_block(const Elt* p, int n, int bh) {
  return make_tma_rows<kBlock, D>(p, n, bh, typename Tiles<D>::SmemBlock{});
}
template <int D>
auto make_tma_half(const Elt* p, int n, int bh) {
  return make_tma_rows<kHalf, D>(p, n, bh, take<0, 2>(typename Tiles<D>::template SmemHalves<1>{}));
}

template <int D>
struct BwdParams {
  decltype(make_tma_block<D>(nullptr, 1, 1)) tma_block_a;  // dK/dV: K; dQ: Q
  decltype(make_tma_block<D>(nullptr, 1, 1)) tma_block_b;  // dK/dV: V; dQ: dO
  decltype(make_tma_half<D>(nullptr, 1, 1)) tma_half_a;    // dK/dV: Q tiles; dQ: K tiles
  decltype(make_tma_half<D>(nullptr, 1, 1)) tma_half_b;    // dK/dV: dO tiles; dQ: V tiles
  Elt* out_a;                                              // dK/dV: dK; dQ: dQ
  Elt* out_b;                                              // dK/dV: dV
  float* dq_accum;                                         // dK/dV, one pass: f32 dQ sums; else null
  const float* lse2;
  const float* di;
  int nq, nk, nq_pad, bh, heads, nqb, nkb;
  float scale, scale_log2;
  bool causal;
  LayoutView view;
  WorkQueue queue;  // dK/dV: B·H · nkb key blocks, or the plan's entries
  float* partial;   // dK/dV with a plan: the split columns' chunk slots (sm90_dkdv_chunk_floats each)
};

// Stores a (128 rows × D) f32 accumulator (rows r0 + row of the tile, below n) as bf16 × factor.
template <int D, class Acc, class Coords>
__device__ void store_rows(const Acc& acc_rc, const Coords& crd_rc, Elt* base, int r0, int n, float factor) {
  CUTLASS_PRAGMA_UNROLL
  for (int r = 0; r < size<0>(acc_rc); ++r) {
    const int row = r0 + get<0>(crd_rc(r, 0));
    if (row >= n) continue;
    CUTLASS_PRAGMA_UNROLL
    for (int c = 0; c < size<1>(acc_rc); c += 2) {
      const int col = get<1>(crd_rc(r, c));
      const __nv_bfloat162 b2 = __float22bfloat162_rn(make_float2(acc_rc(r, c) * factor, acc_rc(r, c + 1) * factor));
      *reinterpret_cast<__nv_bfloat162*>(base + static_cast<int64_t>(row) * D + col) = b2;
    }
  }
}

// Stores a (128 rows × D) f32 accumulator as it is, rows × D row-major at `out` (a chunk's slot).
template <int D, class Acc, class Coords>
__device__ void store_partial_rows(const Acc& acc_rc, const Coords& crd_rc, float* out) {
  CUTLASS_PRAGMA_UNROLL
  for (int r = 0; r < size<0>(acc_rc); ++r) {
    const int row = get<0>(crd_rc(r, 0));
    CUTLASS_PRAGMA_UNROLL
    for (int c = 0; c < size<1>(acc_rc); c += 2) {
      const int col = get<1>(crd_rc(r, c));
      *reinterpret_cast<float2*>(out + row * D + col) = make_float2(acc_rc(r, c), acc_rc(r, c + 1));
    }
  }
}

// Both passes' score GEMMs, issued as one batch and waited for: c1 = a1·b1(stage)ᵀ and
// c2 = a2·b2(stage)ᵀ over D (Sᵀ and dPᵀ for dK/dV, S and dP for dQ), accumulators overwritten.
// `issued` runs between the issue and the wait (the ping-pong passes the turn there).
struct NoOp {
  __device__ void operator()() const {}
};
template <class Mma, class A1, class B1, class C1, class A2, class B2, class C2, class Issued = NoOp>
__device__ __forceinline__ void score_gemm_pair(Mma& mma, const A1& a1, const B1& b1, C1& c1, const A2& a2,
                                                const B2& b2, C2& c2, int stage, Issued issued = {}) {
  warpgroup_fence_operand(c1);
  warpgroup_fence_operand(c2);
  warpgroup_arrive();
  mma.accumulate_ = GMMA::ScaleOut::Zero;
  CUTLASS_PRAGMA_UNROLL
  for (int kk = 0; kk < size<2>(a1); ++kk) {
    cute::gemm(mma, a1(_, _, kk), b1(_, _, kk, stage), c1);
    mma.accumulate_ = GMMA::ScaleOut::One;
  }
  mma.accumulate_ = GMMA::ScaleOut::Zero;
  CUTLASS_PRAGMA_UNROLL
  for (int kk = 0; kk < size<2>(a2); ++kk) {
    cute::gemm(mma, a2(_, _, kk), b2(_, _, kk, stage), c2);
    mma.accumulate_ = GMMA::ScaleOut::One;
  }
  warpgroup_commit_batch();
  issued();
  warpgroup_wait<0>();
  warpgroup_fence_operand(c1);
  warpgroup_fence_operand(c2);
}

// Stages a warpgroup's dQᵀ band (64 columns × 64 rows f32, accumulator order) in `stage` and adds
// it to `sums` (the band's 16 KiB run). Each warp holds 16 whole columns of the band (the
// accumulator's rows 16·warp ..: sm90_band_layout_as_assumed), a 4 KiB run of `stage` and of
// `sums`, so each stages and adds its own run by its own bulk reduce-add, with warp syncs where a
// warpgroup's named barrier stood twice a band. A run is free once the warp's previous reduce has
// read it: lane 0, its issuer, waits for that before the warp writes.
template <class Acc, class Coords>
__device__ __forceinline__ void add_band(Acc& acc, const Coords& crd_rc, float* stage, float* sums) {
  warpgroup_fence_operand(acc);
  Tensor acc_rc = make_tensor(acc.data(), rowcol(acc.layout()));
  int lane;
  asm volatile("mov.u32 %0, %%laneid;" : "=r"(lane));
  if (lane == 0) tma_store_wait<0>();
  __syncwarp();
  // The wgmma accumulator of a 64 × 64 tile: a thread holds 2 columns of the band (rows of acc_rc,
  // col0 and col0 + 8) × 8 row pairs (row0 + 8·b, b = c / 2), row0 < 8. With t = swizzle(col0) / 8,
  // the same for both columns, sm90_dq_sums_at(0, 0, col0 + 8·a, row0 + 8·b) = col0·64 + row0 +
  // 512·a + 8·(b & 4) + 8·((b & 3) ^ t): four offsets computed at run time, the rest immediates.
  // Written out so because the compiler, given the XOR of the whole coordinates, hoisted 16
  // addresses out of the main loop and spilled them at D 128 (64 bytes of spill stores; 16 with
  // the four offsets hoisted instead, 4 with t from col0 kept live).
  static_assert(decltype(size<0>(acc_rc))::value == 2 && decltype(size<1>(acc_rc))::value == 2 * kHalf / 8);
  const int col0 = get<0>(crd_rc(0, 0)), row0 = get<1>(crd_rc(0, 0));
  // t from the lane (col0 ≡ lane / 4 mod 4: sm90_band_layout_as_assumed), read here each band so
  // that nothing beyond `base` stays live across the main loop for it.
  const int t = (lane >> 2) & 3;
  float* base = stage + col0 * kHalf + row0;
  CUTLASS_PRAGMA_UNROLL
  for (int a = 0; a < 2; ++a) {
    CUTLASS_PRAGMA_UNROLL
    for (int b = 0; b < kHalf / 8; ++b) {
      float* at = base + a * 8 * kHalf + 8 * (b & 4) + 8 * ((b & 3) ^ t);
      *reinterpret_cast<float2*>(at) = make_float2(acc_rc(a, 2 * b), acc_rc(a, 2 * b + 1));
    }
  }
  cutlass::arch::fence_view_async_shared();  // generic-proxy stores → the bulk copy's async reads
  __syncwarp();
  if (lane == 0) {
    constexpr int kWarpColumns = 16;
    const int run = (col0 & ~(kWarpColumns - 1)) * kHalf;  // the warp's first column's offset
    bulk_reduce_add_f32(sums + run, stage + run, kWarpColumns * kHalf * static_cast<int>(sizeof(float)));
    tma_store_arrive();
  }
}

// A warpgroup's dQᵀ band of one tile (Kᵀ band · dSᵀ of dS buffer `buf`, over all 128 keys) into
// the open wgmma batch.
template <class Mma, class A, class B, class C>
__device__ __forceinline__ void dq_band_gemm(Mma& mma, const A& kt, const B& ds, C& acc, int buf) {
  mma.accumulate_ = GMMA::ScaleOut::Zero;
  CUTLASS_PRAGMA_UNROLL
  for (int kk = 0; kk < size<2>(kt); ++kk) {
    cute::gemm(mma, kt(_, _, kk, 0), ds(_, _, kk, buf), acc);
    mma.accumulate_ = GMMA::ScaleOut::One;
  }
}

// The one-pass dS buffer and dQᵀ staging copies (null in the two-pass kernel's shared memory,
// which has none).
template <bool kOnePass, class SmemT>
__device__ Elt* ds_buffer(SmemT& ss) {
  if constexpr (kOnePass)
    return ss.ds.data();
  else
    return nullptr;
}
template <bool kOnePass, class SmemT>
__device__ float* dq_stage(SmemT& ss, int i) {
  if constexpr (kOnePass)
    return ss.dq[i];
  else
    return nullptr;
}

// P = 2^(S·c − LSE₂) is taken by exp2_ftz, without exp2f's subnormal handling (a compare and two
// multiplies a score): backwards 1.01–1.24× faster on an H100 (bench/RESULTS.md, 2026-12-06).
//
// kTurns (one pass only; SPARROW_BLOCK_ATTN_BWD=sm90_bwd_pingpong, opt-in: within noise on an
// H100, HOPPER_NOTES "Next" 1): the consumer warpgroups issue their GEMM batches in strict
// alternation — scores of tile t by warpgroup 0, then 1, then the dK/dV batch by 0, then 1 — as the
// forward's ping-pong does, so one warpgroup's elementwise work (P, dS, the dS and dQᵀ stores)
// runs while the tensor cores work through the other's GEMMs. Warpgroup c waits on turn barrier
// c and passes to 1 − c right after issuing. Both walk the same tiles, so each has 2n turns;
// warpgroup 1 opens with one pass to 0, and 0 takes one turn more at the end (after the loop's
// last batch of 1), so passes and waits match on both barriers. No cycle with the dS barriers: the
// dS a warpgroup waits for was stored before the other's previous turn.
//
// kRegKV (one pass, D 64; the default there since session 16, SPARROW_BLOCK_ATTN_BWD=sm90_bwd_smem
// without): K and V are the register A operands of Sᵀ and dPᵀ, read from shared memory once a
// column by ldmatrix (16 registers each at D 64), not by every tile's wgmma. By count
// (bench/HOPPER_NOTES.md) a tile moves ~192 KiB through shared memory, more than its GEMMs' time
// at 128 B a cycle allows; this takes 32 KiB of it away. Measured on an H100: 1.01–1.04× f+b
// (bench/RESULTS.md, session 16), less than the 17 % of the traffic it removes: the passes' time
// is not all shared-memory bandwidth.
template <int D, bool kOnePass, bool kTurns = false, bool kRegKV = false, int KVS = 1>
__global__ void __launch_bounds__(kThreads, 1) dkdv_kernel(CUTE_GRID_CONSTANT const BwdParams<D> p) {
  static_assert(kOnePass || !(kTurns || kRegKV), "the turns and registers K, V are the one pass's");
  static_assert(!kRegKV || D == 64, "K and V in registers: D 64 only (D 128 would need 64 registers more)");
  static_assert(KVS == 1 || kRegKV,
                "two K/V buffers: with K and V in registers (the score GEMMs' A is then no descriptor)");
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = DkdvCfg<D, kOnePass, KVS>;
  constexpr int S = C::kStages;
  using SmemT = std::conditional_t<kOnePass, typename C::SmemOnePass, typename C::Smem>;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  auto& ss = *reinterpret_cast<SmemT*>(smem_raw);

  const int tid = threadIdx.x;
  const int wg = cutlass::canonical_warp_group_idx();
  // Work item = one key block of one (batch, head): item = kb · B·H + bh. The persistent grid takes
  // them as its plan orders them (block_attention_sm90_plan.cu: split columns' chunks and long
  // columns first, then head by head); without a plan, as numbered (under causality the first key
  // blocks have the longest columns: they go first). The producer looks the columns up; the
  // consumers learn them from the notes it leaves with each buffer (ColumnNote, TileNote).
  struct Column {
    int bh, h, kb, k0, tiles, slot;  // slot ≥ 0: a chunk, its dK and dV to chunk slot `slot`
    ColumnBlocks col;
  };
  auto column_of = [&](int n_item) {
    const PlanEntry e = p.queue.plan != nullptr ? plan_entry(p.queue.plan, n_item) : PlanEntry{n_item, 0, -1, -1};
    Column c;
    c.bh = e.item % p.bh;
    c.h = c.bh % p.heads;
    c.kb = e.item / p.bh;
    c.k0 = c.kb * kBlock;
    c.col = column_blocks(p.view, c.h, c.kb, p.nqb, p.causal);
    if (e.end >= 0) c.col = c.col.range(e.first, e.end);
    c.slot = e.slot;
    c.tiles = 2 * c.col.n;
    return c;
  };
  // Tile t of a column's walk: query rows [q0, q0 + 64) of block col.at(t / 2); kSkip ones are passed over.
  auto tile_q0 = [](const Column& c, int t) { return c.col.at(t >> 1) * kBlock + (t & 1) * kHalf; };
  auto tile_kind = [&](const Column& c, int t) {
    return classify_tile(tile_q0(c, t), kHalf, c.k0, kBlock, p.nq, p.nk, p.causal);
  };

  if (tid == 0) {
    CUTLASS_PRAGMA_UNROLL
    for (int s = 0; s < KVS; ++s) {
      Bar::init(&ss.full_kv[s], 1);
      Bar::init(&ss.empty_kv[s], kConsumerThreads);
    }
    CUTLASS_PRAGMA_UNROLL
    for (int s = 0; s < S; ++s) {
      Bar::init(&ss.full[s], 1);
      Bar::init(&ss.empty[s], kConsumerThreads);
    }
    cutlass::arch::fence_barrier_init();
  }
  __syncthreads();

  // K (or V) buffer st; sK, sV: buffer 0, which the fragments' shapes come from.
  auto kv_buffer = [](Elt* base, int st) {
    return make_tensor(make_smem_ptr(base + st * C::kKvElems), typename C::SmemLayoutKV{});
  };
  Tensor sK = kv_buffer(ss.k.data(), 0);
  Tensor sV = kv_buffer(ss.v.data(), 0);
  Tensor sQ = make_tensor(make_smem_ptr(ss.q.data()), typename C::SmemLayoutQ{});
  Tensor sdO = make_tensor(make_smem_ptr(ss.dout.data()), typename C::SmemLayoutQ{});

  if (wg == 0) {
    // ------------------------------------------------------------------ producer
    // 40 + 2 × 232 registers a thread-row: the 168 × 384 the CTA was launched with (setmaxnreg
    // only moves registers between the warpgroups of a CTA).
    cutlass::arch::warpgroup_reg_dealloc<40>();
    if (tid == 0) {
      Tensor mK = p.tma_block_a.get_tma_tensor(make_shape(p.nk, Int<D>{}, p.bh));
      Tensor mV = p.tma_block_b.get_tma_tensor(make_shape(p.nk, Int<D>{}, p.bh));
      Tensor mQ = p.tma_half_a.get_tma_tensor(make_shape(p.nq, Int<D>{}, p.bh));
      Tensor mdO = p.tma_half_b.get_tma_tensor(make_shape(p.nq, Int<D>{}, p.bh));
      constexpr int kStatBytes = kHalf * static_cast<int>(sizeof(float));
      Ring<KVS> kv;
      Ring<S> ring;
      // A column's K and V go in once the consumers have freed the buffer (after the last GEMMs
      // that read it): with one buffer they load during the previous column's epilogue, with two
      // while its tiles run; its first Q/dO tiles already during the previous column's last tiles
      // (the ring runs on across columns). The column itself (the queue's next item, its plan
      // entry, its bounds and first tile: dependent global loads) is looked up before the wait,
      // while the consumers still work through the previous column's last stages.
      int item = p.queue.next(0);
      for (int n = 0;; ++n, kv.advance()) {
        Column cl{};  // past the work: no tiles
        if (item >= 0) cl = column_of(item);
        NoteWalk walk(
            cl.tiles, [&](int t) { return tile_kind(cl, t); }, [&](int t) { return tile_q0(cl, t); });
        Bar::wait(&ss.empty_kv[kv.stage], kv.phase ^ 1);
        // Published by the arrival below (release), read after its wait.
        ss.column[kv.stage] = item < 0 ? ColumnNote{-1, 0, -1, false} : ColumnNote{cl.bh, cl.kb, cl.slot, !walk.done()};
        if (item < 0) {
          Bar::arrive(&ss.full_kv[kv.stage]);
          break;
        }
        Tensor gK = local_tile(mK(_, _, cl.bh), Shape<Int<kBlock>, Int<D>>{}, make_coord(cl.kb, _0{}));
        Tensor gV = local_tile(mV(_, _, cl.bh), Shape<Int<kBlock>, Int<D>>{}, make_coord(cl.kb, _0{}));
        Tensor gQ = local_tile(mQ(_, _, cl.bh), Shape<Int<kHalf>, Int<D>>{}, make_coord(_, _0{}));  // (64, D, tiles)
        Tensor gdO = local_tile(mdO(_, _, cl.bh), Shape<Int<kHalf>, Int<D>>{}, make_coord(_, _0{}));
        auto [tKg, tKs] = tma_partition(p.tma_block_a, Int<0>{}, Layout<_1>{},
                                        group_modes<0, 2>(kv_buffer(ss.k.data(), kv.stage)), group_modes<0, 2>(gK));
        auto [tVg, tVs] = tma_partition(p.tma_block_b, Int<0>{}, Layout<_1>{},
                                        group_modes<0, 2>(kv_buffer(ss.v.data(), kv.stage)), group_modes<0, 2>(gV));
        auto [tQg, tQs] =
            tma_partition(p.tma_half_a, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sQ), group_modes<0, 2>(gQ));
        auto [tdOg, tdOs] =
            tma_partition(p.tma_half_b, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sdO), group_modes<0, 2>(gdO));
        // The tile's LSE₂ and Di: rows below nq_pad, a multiple of 64, so always in range; 256-byte
        // aligned (q0 and nq_pad are multiples of 64).
        const float* lse2 = p.lse2 + static_cast<int64_t>(cl.bh) * p.nq_pad;
        const float* di = p.di + static_cast<int64_t>(cl.bh) * p.nq_pad;

        uint64_t* full_kv = &ss.full_kv[kv.stage];
        TxBar::arrive_and_expect_tx(full_kv, 2 * C::kBlockBytes);
        copy(p.tma_block_a.with(*full_kv), tKg, tKs);
        copy(p.tma_block_b.with(*full_kv), tVg, tVs);
        while (!walk.done()) {
          const TileNote note = walk.take();
          const int q0 = note.r0;
          Bar::wait(&ss.empty[ring.stage], ring.phase ^ 1);
          ss.tile[ring.stage] = note;  // published as the column's note
          uint64_t* full = &ss.full[ring.stage];
          TxBar::arrive_and_expect_tx(full, 2 * C::kTileBytes + 2 * kStatBytes);
          copy(p.tma_half_a.with(*full), tQg(_, q0 / kHalf), tQs(_, ring.stage));
          copy(p.tma_half_b.with(*full), tdOg(_, q0 / kHalf), tdOs(_, ring.stage));
          SM90_BULK_COPY_G2S::copy(lse2 + q0, full, ss.lse2[ring.stage], kStatBytes);
          SM90_BULK_COPY_G2S::copy(di + q0, full, ss.di[ring.stage], kStatBytes);
          ring.advance();
        }
        item = p.queue.next(n + 1);
      }
    }
  } else {
    // ------------------------------------------------------------------ consumers
    cutlass::arch::warpgroup_reg_alloc<232>();
    const int ctid = tid - 128;
    std::conditional_t<kRegKV, typename C::MmaScoresRegA, typename C::MmaScores> mma_t;
    typename C::MmaAccumulate mma_kv;
    auto thr_t = mma_t.get_thread_slice(ctid);
    auto thr_kv = mma_kv.get_thread_slice(ctid);
    Tensor sQt = make_tensor(make_smem_ptr(ss.q.data()), typename C::SmemLayoutQt{});
    Tensor sdOt = make_tensor(make_smem_ptr(ss.dout.data()), typename C::SmemLayoutQt{});

    Tensor tSrK = thr_t.partition_fragment_A(sK);  // (MMA, MMA_M, MMA_K): descriptors, or registers (kRegKV)
    Tensor tSrV = thr_t.partition_fragment_A(sV);
    // kRegKV: each column's K and V (buffer st) into tSrK and tSrV, after full_kv.
    auto load_kv = [&](int st) {
      if constexpr (kRegKV) {
        auto s2r = make_tiled_copy_A(Copy_Atom<SM75_U32x4_LDSM_N, Elt>{}, mma_t);
        auto s2r_thr = s2r.get_thread_slice(ctid);
        copy(s2r, s2r_thr.partition_S(kv_buffer(ss.k.data(), st)), s2r_thr.retile_D(tSrK));
        copy(s2r, s2r_thr.partition_S(kv_buffer(ss.v.data(), st)), s2r_thr.retile_D(tSrV));
        warpgroup_fence_operand(tSrK);
        warpgroup_fence_operand(tSrV);
      }
    };
    Tensor tSrQ = thr_t.partition_fragment_B(sQ);  // (MMA, MMA_N, MMA_K, S)
    Tensor tSrdO = thr_t.partition_fragment_B(sdO);
    Tensor tKrQt = thr_kv.partition_fragment_B(sQt);  // (MMA, MMA_N, MMA_K, S)
    Tensor tVrdOt = thr_kv.partition_fragment_B(sdOt);
    Tensor tSrS = partition_fragment_C(mma_t, Shape<Int<kBlock>, Int<kHalf>>{});
    Tensor tSrdP = partition_fragment_C(mma_t, Shape<Int<kBlock>, Int<kHalf>>{});
    Tensor tdKrdK = partition_fragment_C(mma_kv, Shape<Int<kBlock>, Int<D>>{});
    Tensor tdVrdV = partition_fragment_C(mma_kv, Shape<Int<kBlock>, Int<D>>{});
    static_assert(decltype(size<1>(tSrS))::value == 1 && decltype(size<2>(tSrS))::value == 1);
    static_assert(decltype(size(tSrS))::value == kHalf / 2);

    Tensor cS = make_identity_tensor(Shape<Int<kBlock>, Int<kHalf>>{});
    Tensor Crs = make_tensor(thr_t.partition_C(cS).data(), rowcol(thr_t.partition_C(cS).layout()));
    Tensor Srs = make_tensor(tSrS.data(), rowcol(tSrS.layout()));
    Tensor dPrs = make_tensor(tSrdP.data(), rowcol(tSrdP.layout()));
    // Pᵀ and dSᵀ as register A-fragments: ((2, 2, 2), 1, kHalf/16).
    Tensor tKVrP = make_tensor<Elt>(Layout<Shape<Shape<_2, _2, _2>, _1, Int<kHalf / 16>>>{});
    Tensor tKVrdS = make_tensor<Elt>(Layout<Shape<Shape<_2, _2, _2>, _1, Int<kHalf / 16>>>{});

    // One pass: dS in shared memory and this warpgroup's dQᵀ band (unused, and compiled away, in
    // the two-pass kernel). D = 128: warpgroup w owns band w on every tile; D = 64 has one band,
    // which the two warpgroups take on alternate tiles.
    auto r2s = make_tiled_copy_C(Copy_Atom<SM90_U32x4_STSM_N, Elt>{}, mma_t);
    auto r2s_ds = r2s.get_thread_slice(ctid);
    Tensor tdSs = r2s_ds.partition_D(
        make_tensor(make_smem_ptr(ds_buffer<kOnePass>(ss)), typename C::SmemLayoutdSt{}));  // (CPY, M, N, kDsBuffers)
    typename C::MmaDqT mma_dq;
    auto thr_dq = mma_dq.get_thread_slice(ctid % 128);
    const int band = D / C::kBand == 2 ? wg - 1 : 0;
    // Kᵀ's band of K buffer st: (MMA, MMA_M, MMA_K, 1) descriptors.
    auto band_kt = [&](int st) {
      return thr_dq.partition_fragment_A(make_tensor(
          make_smem_ptr(ss.k.data() + st * C::kKvElems + band * kBlock * C::kBand), typename C::SmemLayoutKt{}));
    };
    Tensor tQrdS =
        thr_dq.partition_fragment_B(make_tensor(make_smem_ptr(ds_buffer<kOnePass>(ss)), typename C::SmemLayoutdS{}));
    Tensor cQt = make_identity_tensor(Shape<Int<C::kBand>, Int<kHalf>>{});
    Tensor CQtrs = make_tensor(thr_dq.partition_C(cQt).data(), rowcol(thr_dq.partition_C(cQt).layout()));
    Tensor cKV = make_identity_tensor(Shape<Int<kBlock>, Int<D>>{});
    Tensor CKVrs = make_tensor(thr_kv.partition_C(cKV).data(), rowcol(thr_kv.partition_C(cKV).layout()));

    // One pass: does this warpgroup form the dQᵀ band of the tile it processed j-th (counted over
    // the CTA's columns); the named barrier saying that warpgroup w's dS of that tile is in.
    auto adds_band = [&](int j) { return D / C::kBand == 2 || wg - 1 == (j & 1); };
    auto ds_ready = [](int w, int j) { return kDsReadyBar + 2 * (w - 1) + (j & 1); };
    // The turns (kTurns): wait for this warpgroup's, pass to the other. They run on across
    // columns: consumer warpgroup 0 goes first, and takes one turn more at the very end (after
    // warpgroup 1's last batch), so passes and waits match on both barriers.
    auto my_turn = [&] {
      if constexpr (kTurns) cutlass::arch::NamedBarrier::sync(kConsumerThreads, kTurnBar + wg - 1);
    };
    auto pass_turn = [&] {
      if constexpr (kTurns) cutlass::arch::NamedBarrier::arrive(kConsumerThreads, kTurnBar + 2 - wg);
    };
    if (wg == 2) pass_turn();
    Ring<KVS> kv;
    Ring<S> ring;
    // Tiles processed over the CTA's columns: the dS buffer (mod kDsBuffers) and the dS barriers'
    // parity run on across columns, so that a warpgroup's first dS of a column can never meet the
    // other's unconsumed last one of the previous column on the same barrier.
    int seq = 0;
    for (int n = 0;; ++n, kv.advance()) {
      TxBar::wait(&ss.full_kv[kv.stage], kv.phase);
      const ColumnNote cl = ss.column[kv.stage];
      if (cl.bh < 0) break;
      load_kv(kv.stage);
      const int k0 = cl.kb * kBlock;
      // This (batch, head)'s sums (null in the two-pass kernel: p.dq_accum is) and this
      // warpgroup's band of them (+ tile · D · 64).
      float* band_sums = kOnePass ? p.dq_accum + sm90_dq_sums_at(static_cast<int64_t>(cl.bh) * (p.nq_pad / kHalf), D,
                                                                 band * C::kBand, 0)
                                  : nullptr;
      clear(tdKrdK);
      clear(tdVrdV);
      int done = 0;  // tiles of this column processed
      int prev_q0 = 0;
      for (bool more = cl.walks; more;) {
        const int ds_buf = seq % kDsBuffers, prev_buf = (seq + kDsBuffers - 1) % kDsBuffers;
        TxBar::wait(&ss.full[ring.stage], ring.phase);
        const TileNote note = ss.tile[ring.stage];
        const int q0 = note.r0;
        more = !note.last();
        my_turn();
        score_gemm_pair(mma_t, tSrK, tSrQ, tSrS, tSrV, tSrdO, tSrdP, ring.stage, pass_turn);

        // Pᵀ and dSᵀ in place of Sᵀ and dPᵀ; rows are keys, columns query rows of the tile.
        if (note.partial())
          mask_scores(
              Srs, [&](int r, int c) { return make_int2(q0 + get<1>(Crs(r, c)), k0 + get<0>(Crs(r, c))); }, p.nk,
              p.causal);
        CUTLASS_PRAGMA_UNROLL
        for (int c = 0; c < size<1>(Srs); ++c) {
          const int qc = get<1>(Crs(0, c));
          const float lse2 = ss.lse2[ring.stage][qc], di = ss.di[ring.stage][qc];
          CUTLASS_PRAGMA_UNROLL
          for (int r = 0; r < size<0>(Srs); ++r) {
            const float pr = exp2_ftz(fmaf(Srs(r, c), p.scale_log2, -lse2));
            Srs(r, c) = pr;
            dPrs(r, c) = pr * (dPrs(r, c) - di);
          }
        }
        to_bf16_fragment(tSrS, tKVrP);
        to_bf16_fragment(tSrdP, tKVrdS);

        // One pass: dSᵀ (bf16, the accumulator's element order) into this tile's buffer. A dQᵀ band
        // reads all 128 keys, both warpgroups' halves, so the band of tile t joins tile t + 1's
        // batch: a warpgroup then waits only for the other's dS of tile t (named barriers 2·w +
        // parity: w arrives, the other syncs), not in lockstep. The sync also comes before this
        // tile's dS is written: the other warpgroup has then finished tile t − 2's batch, whose band
        // read the buffer being overwritten (three buffers). A column's first tile needs no sync:
        // the previous column ended with this warpgroup waiting for the other's last dS, which the
        // other wrote after its batch that read this buffer.
        if constexpr (kOnePass) {
          if (done > 0) cutlass::arch::NamedBarrier::sync(kConsumerThreads, ds_ready(3 - wg, seq - 1));
          Tensor tdSr = r2s_ds.retile_S(make_tensor(tKVrdS.data(), tSrdP.layout()));
          copy(r2s, tdSr, tdSs(_, _, _, ds_buf));
          cutlass::arch::fence_view_async_shared();  // generic-proxy stores → the wgmma's async reads
          cutlass::arch::NamedBarrier::arrive(kConsumerThreads, ds_ready(wg, seq));
        }
        // dV += Pᵀ dO, dK += dSᵀ Q and, one pass, the previous tile's dQᵀ band: one wgmma batch. The
        // band's accumulator lives only inside its branch: one that a path writes and another does
        // not is kept in local memory by ptxas, its wgmmas serialised.
        auto dkdv_batch = [&](auto&&... band) {
          warpgroup_fence_operand(tdVrdV);
          warpgroup_fence_operand(tdKrdK);
          warpgroup_fence_operand(tKVrP);
          warpgroup_fence_operand(tKVrdS);
          my_turn();
          warpgroup_arrive();
          CUTLASS_PRAGMA_UNROLL
          for (int kk = 0; kk < kHalf / 16; ++kk)
            cute::gemm(mma_kv, tKVrP(_, _, kk), tVrdOt(_, _, kk, ring.stage), tdVrdV);
          CUTLASS_PRAGMA_UNROLL
          for (int kk = 0; kk < kHalf / 16; ++kk)
            cute::gemm(mma_kv, tKVrdS(_, _, kk), tKrQt(_, _, kk, ring.stage), tdKrdK);
          (dq_band_gemm(mma_dq, band_kt(kv.stage), tQrdS, band, prev_buf), ...);
          warpgroup_commit_batch();
          pass_turn();
          warpgroup_wait<0>();
          warpgroup_fence_operand(tdVrdV);
          warpgroup_fence_operand(tdKrdK);
          Bar::arrive(&ss.empty[ring.stage]);  // every thread: each read the stage's statistics
        };
        if (kOnePass && done > 0 && adds_band(seq - 1)) {
          Tensor band_acc = partition_fragment_C(mma_dq, Shape<Int<C::kBand>, Int<kHalf>>{});
          dkdv_batch(band_acc);
          add_band(band_acc, CQtrs, dq_stage<kOnePass>(ss, wg - 1),
                   band_sums + sm90_dq_sums_at(prev_q0 / kHalf, D, 0, 0));
        } else {
          dkdv_batch();
        }
        ring.advance();
        prev_q0 = q0;
        ++done;
        ++seq;
      }
      if constexpr (kOnePass) {
        // The column's last band (outside the turns: only one warpgroup may have it, at D 64).
        if (done > 0) {
          cutlass::arch::NamedBarrier::sync(kConsumerThreads, ds_ready(3 - wg, seq - 1));
          if (adds_band(seq - 1)) {
            Tensor band_acc = partition_fragment_C(mma_dq, Shape<Int<C::kBand>, Int<kHalf>>{});
            warpgroup_arrive();
            dq_band_gemm(mma_dq, band_kt(kv.stage), tQrdS, band_acc, (seq + kDsBuffers - 1) % kDsBuffers);
            warpgroup_commit_batch();
            warpgroup_wait<0>();
            add_band(band_acc, CQtrs, dq_stage<kOnePass>(ss, wg - 1),
                     band_sums + sm90_dq_sums_at(prev_q0 / kHalf, D, 0, 0));
          }
        }
      }
      Bar::arrive(&ss.empty_kv[kv.stage]);  // this thread's GEMMs that read K and V are done

      // Epilogue: keys below nk; a key no query sees gets zeros. A chunk's f32 sums go to its slot
      // (dK unscaled), for dkdv_combine_kernel.
      auto dK = make_tensor(tdKrdK.data(), rowcol(tdKrdK.layout()));
      auto dV = make_tensor(tdVrdV.data(), rowcol(tdVrdV.layout()));
      if (cl.slot >= 0) {
        float* part = p.partial + static_cast<int64_t>(cl.slot) * (2 * kBlock * D);
        store_partial_rows<D>(dK, CKVrs, part);
        store_partial_rows<D>(dV, CKVrs, part + kBlock * D);
      } else {
        const int64_t base = static_cast<int64_t>(cl.bh) * p.nk * D;
        store_rows<D>(dK, CKVrs, p.out_a + base, k0, p.nk, p.scale);
        store_rows<D>(dV, CKVrs, p.out_b + base, k0, p.nk, 1.f);
      }
    }
    if (wg == 1) my_turn();                               // the pass warpgroup 1 made after its last turn (see kTurns)
    if (kOnePass && ctid % 32 == 0) tma_store_wait<0>();  // the last bands' reads of the staging copies
  }
#endif
}

// A split column's dK and dV: the sums of its chunks' slots, added in chunk order (deterministic),
// dK · scale, as bf16 rows below nk. A unit is 16 rows of a split column (SplitItem); the CTAs take
// the units in turn, each thread a float2 of dK and of dV a row at a time, its chunks' loads
// independent of one another (the first version, a CTA a slot walking the chunks one load at a
// time, took tens of µs at 64K).
template <int D>
__global__ void __launch_bounds__(256)
    dkdv_combine_kernel(const int32_t* plan, int items, int slots, const float* partial, Elt* dk, Elt* dv, int bh,
                        int nk, float scale) {
  constexpr int kGroups = kBlock / kCombineRows;
  constexpr int64_t kSlot = 2 * kBlock * D;
  const int units = split_items(plan, items, slots) * kGroups;
  for (int u = blockIdx.x; u < units; u += gridDim.x) {
    const SplitItem si = split_item(plan, items, slots, u / kGroups);
    const int r0 = u % kGroups * kCombineRows;
    const int64_t k0 = static_cast<int64_t>(si.item / bh) * kBlock;
    const int64_t out = (static_cast<int64_t>(si.item % bh) * nk + k0) * D;
    for (int i = threadIdx.x; i < kCombineRows * D / 2; i += blockDim.x) {
      const int row = r0 + i / (D / 2), col = i % (D / 2) * 2;
      if (k0 + row >= nk) break;  // i grows with row
      const float* src = partial + si.first_slot * kSlot + row * D + col;
      float2 gk = make_float2(0.f, 0.f), gv = gk;
#pragma unroll 4
      for (int c = 0; c < si.chunks; ++c) {
        const float2 a = *reinterpret_cast<const float2*>(src + c * kSlot);
        const float2 b = *reinterpret_cast<const float2*>(src + c * kSlot + kBlock * D);
        gk.x += a.x, gk.y += a.y, gv.x += b.x, gv.y += b.y;
      }
      const int64_t at = out + static_cast<int64_t>(row) * D + col;
      *reinterpret_cast<__nv_bfloat162*>(dk + at) = __float22bfloat162_rn(make_float2(gk.x * scale, gk.y * scale));
      *reinterpret_cast<__nv_bfloat162*>(dv + at) = __float22bfloat162_rn(gv);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// dQ pass.

template <int D>
struct DqCfg : Tiles<D> {
  static constexpr int kStages = 4;
  using SmemLayoutQ = typename Tiles<D>::SmemBlock;  // Q and dO
  using SmemLayoutKs = typename Tiles<D>::template SmemHalves<kStages>;
  using SmemLayoutKt = TransposedSmem<SmemLayoutKs, kHalf, D, kStages>;  // Kᵀ for dQ += dS K

  struct Smem {
    array_aligned<Elt, cosize_v<SmemLayoutQ>, 1024> q;
    array_aligned<Elt, cosize_v<SmemLayoutQ>, 1024> dout;
    array_aligned<Elt, cosize_v<SmemLayoutKs>, 1024> k;
    array_aligned<Elt, cosize_v<SmemLayoutKs>, 1024> v;
    alignas(8) uint64_t bar_q;
    uint64_t full[kStages];
    uint64_t empty[kStages];
    TileNote tile[kStages];  // the tile in each stage (as the dK/dV pass's)
    bool walks;              // whether any tile of the row is not skipped (published with Q and dO)
  };
};

template <int D>
__global__ void __launch_bounds__(kThreads, 1) dq_kernel(CUTE_GRID_CONSTANT const BwdParams<D> p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = DqCfg<D>;
  constexpr int S = C::kStages;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  auto& ss = *reinterpret_cast<typename C::Smem*>(smem_raw);

  const int tid = threadIdx.x;
  const int wg = cutlass::canonical_warp_group_idx();
  // Grid (B·H, query blocks), heads fastest; under causality the later (longer) rows first.
  const int qb =
      p.causal ? static_cast<int>(gridDim.y) - 1 - static_cast<int>(blockIdx.y) : static_cast<int>(blockIdx.y);
  const int bh = blockIdx.x, h = bh % p.heads;
  const int q0 = qb * kBlock;
  const RowBlocks row = row_blocks(p.view, h, qb, p.nkb, p.causal);
  auto tile_k0 = [&](int t) { return row.at(t >> 1) * kBlock + (t & 1) * kHalf; };
  auto tile_kind = [&](int t) { return classify_tile(q0, kBlock, tile_k0(t), kHalf, p.nq, p.nk, p.causal); };
  const int tiles = 2 * row.n;

  if (tid == 0) {
    Bar::init(&ss.bar_q, 1);
    CUTLASS_PRAGMA_UNROLL
    for (int s = 0; s < S; ++s) {
      Bar::init(&ss.full[s], 1);
      Bar::init(&ss.empty[s], kConsumerWarps);
    }
    cutlass::arch::fence_barrier_init();
  }
  __syncthreads();

  Tensor sQ = make_tensor(make_smem_ptr(ss.q.data()), typename C::SmemLayoutQ{});
  Tensor sdO = make_tensor(make_smem_ptr(ss.dout.data()), typename C::SmemLayoutQ{});
  Tensor sK = make_tensor(make_smem_ptr(ss.k.data()), typename C::SmemLayoutKs{});
  Tensor sV = make_tensor(make_smem_ptr(ss.v.data()), typename C::SmemLayoutKs{});

  if (wg == 0) {
    // ------------------------------------------------------------------ producer
    cutlass::arch::warpgroup_reg_dealloc<40>();
    if (tid == 0) {
      Tensor mQ = p.tma_block_a.get_tma_tensor(make_shape(p.nq, Int<D>{}, p.bh));
      Tensor mdO = p.tma_block_b.get_tma_tensor(make_shape(p.nq, Int<D>{}, p.bh));
      Tensor mK = p.tma_half_a.get_tma_tensor(make_shape(p.nk, Int<D>{}, p.bh));
      Tensor mV = p.tma_half_b.get_tma_tensor(make_shape(p.nk, Int<D>{}, p.bh));
      Tensor gQ = local_tile(mQ(_, _, bh), Shape<Int<kBlock>, Int<D>>{}, make_coord(qb, _0{}));
      Tensor gdO = local_tile(mdO(_, _, bh), Shape<Int<kBlock>, Int<D>>{}, make_coord(qb, _0{}));
      Tensor gK = local_tile(mK(_, _, bh), Shape<Int<kHalf>, Int<D>>{}, make_coord(_, _0{}));  // (64, D, tiles)
      Tensor gV = local_tile(mV(_, _, bh), Shape<Int<kHalf>, Int<D>>{}, make_coord(_, _0{}));
      auto [tQg, tQs] =
          tma_partition(p.tma_block_a, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sQ), group_modes<0, 2>(gQ));
      auto [tdOg, tdOs] =
          tma_partition(p.tma_block_b, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sdO), group_modes<0, 2>(gdO));
      auto [tKg, tKs] =
          tma_partition(p.tma_half_a, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sK), group_modes<0, 2>(gK));
      auto [tVg, tVs] =
          tma_partition(p.tma_half_b, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sV), group_modes<0, 2>(gV));

      NoteWalk walk(tiles, tile_kind, tile_k0);
      ss.walks = !walk.done();  // published by the arrival below
      TxBar::arrive_and_expect_tx(&ss.bar_q, 2 * C::kBlockBytes);
      copy(p.tma_block_a.with(ss.bar_q), tQg, tQs);
      copy(p.tma_block_b.with(ss.bar_q), tdOg, tdOs);
      Ring<S> ring;
      while (!walk.done()) {
        const TileNote note = walk.take();
        const int kt = note.r0 / kHalf;
        Bar::wait(&ss.empty[ring.stage], ring.phase ^ 1);
        ss.tile[ring.stage] = note;  // published by the arrival below
        TxBar::arrive_and_expect_tx(&ss.full[ring.stage], 2 * C::kTileBytes);
        copy(p.tma_half_a.with(ss.full[ring.stage]), tKg(_, kt), tKs(_, ring.stage));
        copy(p.tma_half_b.with(ss.full[ring.stage]), tVg(_, kt), tVs(_, ring.stage));
        ring.advance();
      }
    }
  } else {
    // ------------------------------------------------------------------ consumers
    cutlass::arch::warpgroup_reg_alloc<232>();
    const int ctid = tid - 128;
    const int lane = tid & 31;
    typename C::MmaScores mma_s;
    typename C::MmaAccumulate mma_q;
    auto thr_s = mma_s.get_thread_slice(ctid);
    auto thr_q = mma_q.get_thread_slice(ctid);
    Tensor sKt = make_tensor(make_smem_ptr(ss.k.data()), typename C::SmemLayoutKt{});

    Tensor tSrQ = thr_s.partition_fragment_A(sQ);  // (MMA, MMA_M, MMA_K)
    Tensor tSrdO = thr_s.partition_fragment_A(sdO);
    Tensor tSrK = thr_s.partition_fragment_B(sK);  // (MMA, MMA_N, MMA_K, S)
    Tensor tSrV = thr_s.partition_fragment_B(sV);
    Tensor tQrKt = thr_q.partition_fragment_B(sKt);  // (MMA, MMA_N, MMA_K, S)
    Tensor tSrS = partition_fragment_C(mma_s, Shape<Int<kBlock>, Int<kHalf>>{});
    Tensor tSrdP = partition_fragment_C(mma_s, Shape<Int<kBlock>, Int<kHalf>>{});
    Tensor tQrdQ = partition_fragment_C(mma_q, Shape<Int<kBlock>, Int<D>>{});

    Tensor cS = make_identity_tensor(Shape<Int<kBlock>, Int<kHalf>>{});
    Tensor Crs = make_tensor(thr_s.partition_C(cS).data(), rowcol(thr_s.partition_C(cS).layout()));
    Tensor Srs = make_tensor(tSrS.data(), rowcol(tSrS.layout()));
    Tensor dPrs = make_tensor(tSrdP.data(), rowcol(tSrdP.layout()));
    static_assert(decltype(size<0>(Srs))::value == 2);
    Tensor tQrdS = make_tensor<Elt>(Layout<Shape<Shape<_2, _2, _2>, _1, Int<kHalf / 16>>>{});

    // This thread's two query rows: their LSE₂ and Di once (rows past nq: +∞ and 0, so P = 0).
    float lse2[2], di[2];
    CUTLASS_PRAGMA_UNROLL
    for (int r = 0; r < 2; ++r) {
      const int row = q0 + get<0>(Crs(r, 0));
      const int64_t at = static_cast<int64_t>(bh) * p.nq_pad + row;
      lse2[r] = row < p.nq ? p.lse2[at] : INFINITY;
      di[r] = row < p.nq ? p.di[at] : 0.f;
    }

    clear(tQrdQ);
    Bar::wait(&ss.bar_q, 0);
    Ring<S> ring;
    for (bool more = ss.walks; more;) {
      TxBar::wait(&ss.full[ring.stage], ring.phase);
      // Lane 0 reads the note and hands it to its warp: the only reader is then the thread whose
      // arrival on `empty` (release) lets the producer overwrite it (as the forward's item).
      TileNote note;
      if (lane == 0) note = ss.tile[ring.stage];
      note.r0 = __shfl_sync(0xffffffffu, note.r0, 0);
      note.flags = __shfl_sync(0xffffffffu, note.flags, 0);
      const int k0 = note.r0;
      more = !note.last();
      score_gemm_pair(mma_s, tSrQ, tSrK, tSrS, tSrdO, tSrV, tSrdP, ring.stage);

      if (note.partial())
        mask_scores(
            Srs, [&](int r, int c) { return make_int2(q0 + get<0>(Crs(r, c)), k0 + get<1>(Crs(r, c))); }, p.nk,
            p.causal);
      CUTLASS_PRAGMA_UNROLL
      for (int r = 0; r < size<0>(Srs); ++r) {
        CUTLASS_PRAGMA_UNROLL
        for (int c = 0; c < size<1>(Srs); ++c) {
          const float pr = exp2_ftz(fmaf(Srs(r, c), p.scale_log2, -lse2[r]));
          dPrs(r, c) = pr * (dPrs(r, c) - di[r]);
        }
      }
      to_bf16_fragment(tSrdP, tQrdS);

      warpgroup_fence_operand(tQrdQ);
      warpgroup_fence_operand(tQrdS);
      warpgroup_arrive();
      CUTLASS_PRAGMA_UNROLL
      for (int kk = 0; kk < kHalf / 16; ++kk) cute::gemm(mma_q, tQrdS(_, _, kk), tQrKt(_, _, kk, ring.stage), tQrdQ);
      warpgroup_commit_batch();
      warpgroup_wait<0>();
      warpgroup_fence_operand(tQrdQ);
      __syncwarp();
      if (lane == 0) Bar::arrive(&ss.empty[ring.stage]);
      ring.advance();
    }

    Tensor cQ = make_identity_tensor(Shape<Int<kBlock>, Int<D>>{});
    Tensor CQrs = make_tensor(thr_q.partition_C(cQ).data(), rowcol(thr_q.partition_C(cQ).layout()));
    store_rows<D>(make_tensor(tQrdQ.data(), rowcol(tQrdQ.layout())), CQrs,
                  p.out_a + static_cast<int64_t>(bh) * p.nq * D, q0, p.nq, p.scale);
  }
#endif
}

// The one-pass epilogue: dQ = bf16(sums · scale) for rows below nq. A CTA takes one 64-row tile
// (sm90_dq_sums_at's D × 64 run, column-major): reads it in float4s (4 rows of a column, in order:
// the swizzle moves aligned groups of 8) and transposes it into shared memory as rows of pitch
// D + 1, then writes its rows out, two columns a thread, coalesced. The odd pitch keeps both sides
// at most 2-way bank-conflicted; the column-major tile read back a row at a time was 16-way (ncu:
// L1 77 % busy, 2.1 TB/s, 153 µs at 64K H 12 D 64), where this kernel should stream at DRAM speed.
template <int D>
__global__ void __launch_bounds__(256)
    dq_from_sums_kernel(const float* sums, Elt* dq, int nq, int nq_pad, float scale) {
  constexpr int kPitch = D + 1;
  constexpr int kQuads = kHalf / 4;  // float4s a column
  __shared__ float rows[kHalf * kPitch];
  const int64_t t = blockIdx.x;  // bh · (nq_pad / 64) + tile of the row
  const int tiles = nq_pad / kHalf;
  const int64_t bh = t / tiles;
  const int r0 = static_cast<int>(t % tiles) * kHalf;
  const float4* src = reinterpret_cast<const float4*>(sums + sm90_dq_sums_at(t, D, 0, 0));
  for (int i = threadIdx.x; i < D * kQuads; i += blockDim.x) {
    // Stored position i % kQuads · 4 of column col holds rows row .. row + 3.
    const int col = i / kQuads, row = (i % kQuads * 4) ^ sm90_dq_sums_swizzle(col);
    const float4 v = src[i];
    rows[(row + 0) * kPitch + col] = v.x;
    rows[(row + 1) * kPitch + col] = v.y;
    rows[(row + 2) * kPitch + col] = v.z;
    rows[(row + 3) * kPitch + col] = v.w;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < kHalf * D / 2; i += blockDim.x) {
    const int row = i / (D / 2), col = i % (D / 2) * 2;
    if (r0 + row >= nq) break;  // i grows with row
    const float2 v = make_float2(rows[row * kPitch + col] * scale, rows[row * kPitch + col + 1] * scale);
    *reinterpret_cast<__nv_bfloat162*>(dq + (bh * nq + r0 + row) * D + col) = __float22bfloat162_rn(v);
  }
}

template <int D>
void launch(const Sm90Backward& b, cudaStream_t stream) {
  const int nq = static_cast<int>(b.nq), nk = static_cast<int>(b.nk), bh = static_cast<int>(b.bh);
  const int nqb = (nq + kBlock - 1) / kBlock, nkb = (nk + kBlock - 1) / kBlock;
  auto e = [](const void* x) { return static_cast<const Elt*>(x); };
  auto params = [&](const void* block_a, const void* block_b, int n_block, const void* half_a, const void* half_b,
                    int n_half, void* out_a, void* out_b, float* dq_accum) {
    return BwdParams<D>{make_tma_block<D>(e(block_a), n_block, bh),
                        make_tma_block<D>(e(block_b), n_block, bh),
                        make_tma_half<D>(e(half_a), n_half, bh),
                        make_tma_half<D>(e(half_b), n_half, bh),
                        static_cast<Elt*>(out_a),
                        static_cast<Elt*>(out_b),
                        dq_accum,
                        b.lse2,
                        b.di,
                        nq,
                        nk,
                        static_cast<int>(b.nq_pad),
                        bh,
                        static_cast<int>(b.heads),
                        nqb,
                        nkb,
                        b.scale,
                        b.scale_log2,
                        b.causal,
                        b.view,
                        WorkQueue{},
                        b.plan.partial};
  };
  // dK/dV: a CTA a key block of a (batch, head), or the persistent grid (one CTA an SM taking
  // the plan's entries from the counter).
  const int dkdv_items = bh * nkb;
  const bool planned = b.work_counter != nullptr && b.plan.entries != nullptr;
  const int dkdv_ctas = b.work_counter == nullptr ? dkdv_items : sm90_persistent_ctas(dkdv_items, b.ctas);
  if (b.work_counter != nullptr) SPARROW_CUDA_CHECK(cudaMemsetAsync(b.work_counter, 0, sizeof(int32_t), stream));
  // Made here unless kept with a fixed layout from an earlier call (block_attention.cu,
  // kept_with_layout); an adaptive layout changes every call, so its plan is made every call.
  if (planned && !b.plan.made) {
    Sm90PlanItems items;
    items.view = b.view;
    items.bh = bh;
    items.heads = static_cast<int>(b.heads);
    items.nqb = nqb;
    items.nkb = nkb;
    items.nq = nq;
    items.nk = nk;
    items.causal = b.causal;
    sm90_make_plan(items, b.plan, dkdv_ctas, stream);
  }
  auto dkdv_params = [&](float* dq_accum) {
    BwdParams<D> kp = params(b.k, b.v, nk, b.q, b.dout, nq, b.dk, b.dv, dq_accum);
    kp.queue =
        WorkQueue{b.work_counter, planned ? dkdv_items + b.plan.slots : dkdv_items, planned ? b.plan.entries : nullptr};
    return kp;
  };
  // A split column's chunks summed (after the dK/dV pass, on the same stream).
  auto combine = [&] {
    if (!planned || b.plan.slots == 0) return;
    dkdv_combine_kernel<D><<<static_cast<unsigned>(sm90_combine_ctas()), 256, 0, stream>>>(
        b.plan.entries, dkdv_items, b.plan.slots, b.plan.partial, static_cast<Elt*>(b.dk), static_cast<Elt*>(b.dv), bh,
        nk, b.scale);
    SPARROW_CUDA_LAUNCH_CHECK();
  };
  const dim3 dkdv_grid(static_cast<unsigned>(dkdv_ctas));
  if (b.dq_accum != nullptr) {
    // One pass: dK, dV and the f32 dQ sums, then dQ from the sums.
    SPARROW_CUDA_CHECK(cudaMemsetAsync(b.dq_accum, 0, sizeof(float) * sm90_dq_sums_floats(b.bh, b.nq_pad, D), stream));
    constexpr int smem = static_cast<int>(sizeof(typename DkdvCfg<D, true>::SmemOnePass));
    // Two K/V buffers: D 64 only (D 128 never instantiates them).
    constexpr int kKvBuffers = D == 64 ? 2 : 1;
    constexpr int smem_kv2 = static_cast<int>(sizeof(typename DkdvCfg<D, true, kKvBuffers>::SmemOnePass));
    static_assert(smem <= 227 * 1024 && smem_kv2 <= 227 * 1024, "sm_90a: at most 227 KiB of shared memory a CTA");
    auto run = [&](auto kernel, int bytes, std::atomic<uint64_t>& smem_raised) {
      raise_smem_limit(kernel, bytes, smem_raised);
      kernel<<<dkdv_grid, kThreads, bytes, stream>>>(dkdv_params(b.dq_accum));
      SPARROW_CUDA_LAUNCH_CHECK();
    };
    static std::atomic<uint64_t> smem_raised{0}, smem_raised_turns{0}, smem_raised_regs{0}, smem_raised_kv2{0};
    // (D == 64 in the templates: D 128 never instantiates kRegKV)
    if (b.turns)
      run(dkdv_kernel<D, true, true>, smem, smem_raised_turns);
    else if (D == 64 && b.kv_in_registers && b.kv_buffers == 2)
      run(dkdv_kernel<D, true, false, D == 64, kKvBuffers>, smem_kv2, smem_raised_kv2);
    else if (D == 64 && b.kv_in_registers)
      run(dkdv_kernel<D, true, false, D == 64>, smem, smem_raised_regs);
    else
      run(dkdv_kernel<D, true>, smem, smem_raised);
    combine();
    const int64_t tiles = b.bh * (b.nq_pad / kHalf);
    dq_from_sums_kernel<D><<<static_cast<unsigned>(tiles), 256, 0, stream>>>(b.dq_accum, static_cast<Elt*>(b.dq), nq,
                                                                             static_cast<int>(b.nq_pad), b.scale);
    SPARROW_CUDA_LAUNCH_CHECK();
    return;
  }
  {
    constexpr int smem = static_cast<int>(sizeof(typename DkdvCfg<D, false>::Smem));
    static std::atomic<uint64_t> smem_raised{0};
    raise_smem_limit(dkdv_kernel<D, false>, smem, smem_raised);
    dkdv_kernel<D, false><<<dkdv_grid, kThreads, smem, stream>>>(dkdv_params(nullptr));
    SPARROW_CUDA_LAUNCH_CHECK();
    combine();
  }
  {
    constexpr int smem = static_cast<int>(sizeof(typename DqCfg<D>::Smem));
    static std::atomic<uint64_t> smem_raised{0};
    raise_smem_limit(dq_kernel<D>, smem, smem_raised);
    dq_kernel<D><<<dim3(static_cast<unsigned>(bh), static_cast<unsigned>(nqb)), kThreads, smem, stream>>>(
        params(b.q, b.dout, nq, b.k, b.v, nk, b.dq, nullptr, nullptr));
    SPARROW_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace sm90

void sm90_backward(const Sm90Backward& b, cudaStream_t stream) {
  b.d == 64 ? sm90::launch<64>(b, stream) : sm90::launch<128>(b, stream);
}

// add_band's addresses take the band accumulator's coordinates as (col0 + 8·a, row0 + 8·(c / 2) +
// c mod 2) for its (a, c), with row0 < 8, col0 ≡ lane / 4 (mod 4), the lane read in the kernel,
// and both columns among the warp's 16 (16·warp ..), the run the warp adds alone;
// CuTe's partition of the same TiledMMA, walked here on the host for each of a warpgroup's threads.
bool sm90_band_layout_as_assumed() {
  using namespace sm90;
  typename DkdvCfg<64, true>::MmaDqT mma;
  for (int thread = 0; thread < 128; ++thread) {
    auto thr = mma.get_thread_slice(thread);
    Tensor c = thr.partition_C(make_identity_tensor(Shape<Int<DkdvCfg<64, true>::kBand>, Int<kHalf>>{}));
    Tensor crd = make_tensor(c.data(), rowcol(c.layout()));
    const int col0 = get<0>(crd(0, 0)), row0 = get<1>(crd(0, 0)), lane = thread % 32;
    if (row0 < 0 || row0 >= 8 || (col0 & 3) != ((lane >> 2) & 3)) return false;
    // Both of the thread's columns among its warp's 16 (each warp adds its own run of the band).
    if (col0 / 16 != thread / 32 || (col0 + 8) / 16 != thread / 32) return false;
    if (size<0>(crd) != 2 || size<1>(crd) != 2 * kHalf / 8) return false;
    for (int a = 0; a < size<0>(crd); ++a)
      for (int e = 0; e < size<1>(crd); ++e)
        if (get<0>(crd(a, e)) != col0 + 8 * a || get<1>(crd(a, e)) != row0 + 8 * (e / 2) + e % 2) return false;
  }
  return true;
}

}  // namespace sparrow::attn::cuda

#endif  // SPARROW_WITH_CUTLASS
