// sm_90a block-attention forward, FlashAttention-3 style, on CUTLASS CuTe (atoms, swizzled smem
// layouts, TMA); the main loop is ours.
//
// CTA = 128 query rows of one (batch, head) × 384 threads in three warpgroups:
//   warpgroup 0  producer: setmaxnreg down to 40; one thread issues TMA loads — Q once, then K and
//                V tiles (128 keys) into a kStages-deep ring of shared-memory stages, each with
//                its own "K full", "V full" (transaction-counted) and "empty" mbarriers — walking
//                the row's key-block list: partial blocks first, then full blocks.
//   warpgroups 1, 2  consumers (64 query rows each): setmaxnreg up to 232; per key tile
//                S = Q Kᵀ (wgmma 64×128×16, both operands from swizzled smem), the mask only on
//                partial tiles, online softmax in base 2, P converted in registers to bf16
//                A-fragments, O += P V (wgmma register-A, V read MN-major straight from its
//                row-major tile), then the stage is released. The two warpgroups issue their
//                GEMMs in turns (ping-pong), so one's softmax overlaps the other's GEMMs.
// Output: O (bf16) and LSE (natural log, −∞ for a row that sees nothing; O = 0 there), the same
// semantics as the mma.sync forward, so its backward consumes them.
//
// Ragged lengths: TMA fills out-of-range rows with zeros; keys past nk are masked (their tile is
// in the partial list) and query rows past nq are computed but not stored.
#include "attention/kernels/cuda/block_attention_sm90.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <atomic>

#include "attention/kernels/cuda/block_attention_lists.h"
#include "framework/cuda/runtime.h"

namespace sparrow::attn::cuda {

// ---------------------------------------------------------------------------------------------
// Lists: one thread per (stored head, query block).
__global__ void sm90_lists_kernel(LayoutView L, int64_t nq, int64_t nk, bool causal, int32_t* lists, int32_t* counts) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= L.nh * L.nqb) return;
  const int64_t lh = idx / L.nqb, qb = idx % L.nqb;
  const int64_t* rp = L.row_ptr + lh * (L.nqb + 1);
  const int64_t beg = rp[qb], end = rp[qb + 1];
  build_row_lists(L.col_idx + beg, end - beg, qb, L.block, nq, nk, causal, lists + beg, counts + 2 * idx);
}

void sm90_build_lists(const LayoutView& view, int64_t nq, int64_t nk, bool causal, int32_t* lists, int32_t* counts,
                      cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(view.nh) * view.nqb;
  if (rows == 0) return;
  sm90_lists_kernel<<<static_cast<unsigned>((rows + 127) / 128), 128, 0, stream>>>(view, nq, nk, causal, lists, counts);
  SPARROW_CUDA_LAUNCH_CHECK();
}

}  // namespace sparrow::attn::cuda

#ifndef SPARROW_WITH_CUTLASS

namespace sparrow::attn::cuda {
bool sm90_built() { return false; }
void sm90_forward(const Sm90Forward&, cudaStream_t) {
  fail("block_attention: built without CUTLASS (no sm_90a kernel)");
}
}  // namespace sparrow::attn::cuda

#else

#include "attention/kernels/cuda/block_attention_sm90_common.cuh"

namespace sparrow::attn::cuda {
namespace sm90 {

constexpr int kM = kSm90Block, kN = kSm90Block;
constexpr int kThreads = 384;  // producer warpgroup + 2 consumer warpgroups
// Used only in sm_90a device code (maybe_unused: the sm_80 pass compiles the kernels empty).
[[maybe_unused]] constexpr int kConsumerWarps = 8;
[[maybe_unused]] constexpr int kConsumerThreads = 256;  // both consumer warpgroups: the turns' barriers

// A row as the producer hands it to the consumers with its Q buffer (written before the buffer's
// arrival, read after the wait, as TileNote): bh −1 once the grid's work is done; the walk's nv
// tiles, the first np of them partial; slot ≥ 0 a chunk (its O and LSE₂ to chunk slot `slot`).
struct RowNote {
  int bh, m_block, nv, np, slot;
};

// kStages: K/V stages in the ring. The ping-pong schedule holds V of tile i−1 and K of tile i at
// once and frees a stage one turn later, so at D 128 it takes three stages (Q 32 KiB + 3 × 64 KiB
// = 224 KiB of the 227 KiB a CTA may have). kQStages: Q buffers, so that the next row's Q loads
// while this row's last tiles run (D 64: two, 32 KiB; D 128 has room for one, freed after the
// row's last S GEMM).
template <int D>
struct Cfg {
  static constexpr int kStages = D == 64 ? 4 : 3;
  static constexpr int kQStages = D == 64 ? 2 : 1;
  using SmemLayoutQ =
      decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<Elt>{}, Shape<Int<kM>, Int<D>, Int<kQStages>>{}));
  using SmemLayoutK = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<Elt>{}, Shape<Int<kN>, Int<D>, Int<kStages>>{}));
  // Vᵀ (D × keys × stages) viewed on V's row-major (K-major for QKᵀ) tiles: MN-major for P·V.
  using SmemLayoutVt = TransposedSmem<SmemLayoutK, kN, D, kStages>;
  using MmaQK = decltype(make_tiled_mma(GMMA::ss_op_selector<Elt, Elt, float, Shape<Int<kM>, Int<kN>, Int<D>>>(),
                                        Layout<Shape<_2, _1, _1>>{}));
  using MmaPV = decltype(make_tiled_mma(
      GMMA::rs_op_selector<Elt, Elt, float, Shape<Int<kM>, Int<D>, Int<kN>>, GMMA::Major::K, GMMA::Major::MN>(),
      Layout<Shape<_2, _1, _1>>{}));
  static constexpr int kTileBytes = kN * D * 2;

  struct Smem {
    array_aligned<Elt, cosize_v<SmemLayoutQ>, 1024> q;
    array_aligned<Elt, cosize_v<SmemLayoutK>, 1024> k;
    array_aligned<Elt, cosize_v<SmemLayoutK>, 1024> v;
    alignas(8) uint64_t full_q[kQStages];
    uint64_t empty_q[kQStages];
    uint64_t full_k[kStages];
    uint64_t full_v[kStages];
    uint64_t empty[kStages];
    RowNote row[kQStages];   // the row whose Q is in each buffer
    TileNote tile[kStages];  // the K/V tile in each stage (its k0 for a partial tile's mask)
  };
};

template <int D>
auto make_tma_q(const Elt* p, int n, int bh) {
  return make_tma_rows<kM, D>(p, n, bh, take<0, 2>(typename Cfg<D>::SmemLayoutQ{}));
}
template <int D>
auto make_tma_kv(const Elt* p, int n, int bh) {
  return make_tma_rows<kN, D>(p, n, bh, take<0, 2>(typename Cfg<D>::SmemLayoutK{}));
}

template <int D>
struct Params {
  decltype(make_tma_q<D>(nullptr, 1, 1)) tma_q;
  decltype(make_tma_kv<D>(nullptr, 1, 1)) tma_k;
  decltype(make_tma_kv<D>(nullptr, 1, 1)) tma_v;
  Elt* out;                          // O rows at out + b·out_sb + h·out_sh + row·out_srow
  int64_t out_sb, out_sh, out_srow;  // elements (contiguous: H·nq·D, nq·D, D; token-major: nq·H·D, D, H·D)
  float* lse;
  int nq, nk, bh, heads, nqb;
  float scale_log2;
  bool causal;
  LayoutView view;
  const int32_t* lists;
  const int32_t* counts;
  WorkQueue queue;  // items: B·H · nqb query block-rows, or the plan's entries
  float* partial;   // with a plan: the split rows' chunk slots (sm90_fwd_chunk_floats each)
};

template <int D>
__device__ Walk make_walk(const Params<D>& p, int h, int m_block) {
  return row_walk(p.view, p.lists, p.counts, h, m_block, kN, p.nq, p.nk, p.causal);
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// The softmax's scale is applied inside each exponent's FFMA, 2^(s·c − m), with the running max
// kept in scaled units (c > 0 keeps the order, so the max of raw scores scales to the max of
// scaled ones), and exp2 flushes subnormals (exp2_ftz): per score FMNMX, FFMA, MUFU and FADD,
// against FMUL, FMNMX, FADD, FSETP, two FMULs, MUFU and FADD with a separate scale and exp2f.
// On an H100 that made the forward 1.05–1.17× faster (bench/RESULTS.md, 2026-12-06): the softmax,
// not the GEMMs, bounds this loop at D 64 (about 1000 instructions a tile a thread against ~250
// cycles a GEMM), which is also why the ping-pong below pays.
template <int D>
__global__ void __launch_bounds__(kThreads, 1) fwd_kernel(CUTE_GRID_CONSTANT const Params<D> p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = Cfg<D>;
  constexpr int S = C::kStages, QS = C::kQStages;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  auto& ss = *reinterpret_cast<typename C::Smem*>(smem_raw);

  const int tid = threadIdx.x;
  const int wg = cutlass::canonical_warp_group_idx();
  // Work item = one query block-row of one (batch, head): item = rank · B·H + bh, heads fastest,
  // so the CTAs of one row index run together. Heavier rows first where that is known: under
  // causality the later rows; otherwise the first ones (global/sink rows see every key block). The
  // persistent grid takes them as its plan orders them (block_attention_sm90_plan.cu: the split
  // rows' chunks and the long rows first, then the rest in item order): a row's walk positions
  // [first, end), and slot ≥ 0 for a chunk, whose O and LSE₂ go to its slot. The producer looks
  // the rows up; the consumers learn them from the notes it leaves with each buffer (RowNote,
  // TileNote).
  struct Row {
    int bh, h, m_block, first, end, slot;
  };
  auto row_of = [&](int n_item) {
    const PlanEntry e = p.queue.plan != nullptr ? plan_entry(p.queue.plan, n_item) : PlanEntry{n_item, 0, -1, -1};
    const int rank = e.item / p.bh, bh = e.item % p.bh;
    return Row{bh, bh % p.heads, p.causal ? p.nqb - 1 - rank : rank, e.first, e.end, e.slot};
  };
  // The positions [first, end) of the row's walk this item takes, renumbered from 0 (nv of them).
  auto walk_of = [&](const Row& r) {
    const Walk w = make_walk(p, r.h, r.m_block);
    Walk part = w.from(r.first);
    if (r.end >= 0) part.nv = r.end - r.first;
    return part;
  };

  if (tid == 0) {
    CUTLASS_PRAGMA_UNROLL
    for (int s = 0; s < QS; ++s) {
      Bar::init(&ss.full_q[s], 1);
      Bar::init(&ss.empty_q[s], kConsumerWarps);
    }
    CUTLASS_PRAGMA_UNROLL
    for (int s = 0; s < S; ++s) {
      Bar::init(&ss.full_k[s], 1);
      Bar::init(&ss.full_v[s], 1);
      Bar::init(&ss.empty[s], kConsumerWarps);
    }
    cutlass::arch::fence_barrier_init();
  }
  __syncthreads();

  Tensor sQ = make_tensor(make_smem_ptr(ss.q.data()), typename C::SmemLayoutQ{});
  Tensor sK = make_tensor(make_smem_ptr(ss.k.data()), typename C::SmemLayoutK{});
  Tensor sV = make_tensor(make_smem_ptr(ss.v.data()), typename C::SmemLayoutK{});

  if (wg == 0) {
    // ------------------------------------------------------------------ producer
    cutlass::arch::warpgroup_reg_dealloc<40>();
    if (tid == 0) {
      Tensor mQ = p.tma_q.get_tma_tensor(make_shape(p.nq, Int<D>{}, p.bh));
      Tensor mK = p.tma_k.get_tma_tensor(make_shape(p.nk, Int<D>{}, p.bh));
      Tensor mV = p.tma_v.get_tma_tensor(make_shape(p.nk, Int<D>{}, p.bh));
      Ring<QS> qring;
      Ring<S> ring;
      // Item n goes to Q buffer n mod QS once the consumers have freed it (after their last S
      // GEMM of item n − QS): the next row's Q and first K/V tiles load while they finish this one.
      // The row itself (the queue's next item, its plan entry and walk: dependent global loads) is
      // looked up before the wait, while the consumers still work through this one's last tiles.
      int item = p.queue.next(0);
      for (int n = 0;; ++n, qring.advance()) {
        Row r{};
        Walk w;
        if (item >= 0) {
          r = row_of(item);
          w = walk_of(r);
        }
        Bar::wait(&ss.empty_q[qring.stage], qring.phase ^ 1);
        // Published by the arrival below (release), read after its wait.
        ss.row[qring.stage] = item < 0 ? RowNote{-1, 0, 0, 0, -1} : RowNote{r.bh, r.m_block, w.nv, w.np, r.slot};
        if (item < 0) {
          Bar::arrive(&ss.full_q[qring.stage]);
          break;
        }
        Tensor gQ = local_tile(mQ(_, _, r.bh), Shape<Int<kM>, Int<D>>{}, make_coord(r.m_block, _0{}));
        Tensor gK = local_tile(mK(_, _, r.bh), Shape<Int<kN>, Int<D>>{}, make_coord(_, _0{}));  // (kN, D, blocks)
        Tensor gV = local_tile(mV(_, _, r.bh), Shape<Int<kN>, Int<D>>{}, make_coord(_, _0{}));
        auto [tQg, tQs] = tma_partition(p.tma_q, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sQ), group_modes<0, 2>(gQ));
        auto [tKg, tKs] = tma_partition(p.tma_k, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sK), group_modes<0, 2>(gK));
        auto [tVg, tVs] = tma_partition(p.tma_v, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sV), group_modes<0, 2>(gV));

        TxBar::arrive_and_expect_tx(&ss.full_q[qring.stage], kM * D * 2);
        copy(p.tma_q.with(ss.full_q[qring.stage]), tQg, tQs(_, qring.stage));
        for (int i = 0; i < w.nv; ++i, ring.advance()) {
          const int kb = w.block(i);
          Bar::wait(&ss.empty[ring.stage], ring.phase ^ 1);
          // Published by the K tile's arrival below.
          ss.tile[ring.stage] = TileNote::of(kb * kN, i < w.np ? BlockKind::kPartial : BlockKind::kFull, i == w.nv - 1);
          TxBar::arrive_and_expect_tx(&ss.full_k[ring.stage], C::kTileBytes);
          copy(p.tma_k.with(ss.full_k[ring.stage]), tKg(_, kb), tKs(_, ring.stage));
          TxBar::arrive_and_expect_tx(&ss.full_v[ring.stage], C::kTileBytes);
          copy(p.tma_v.with(ss.full_v[ring.stage]), tVg(_, kb), tVs(_, ring.stage));
        }
        item = p.queue.next(n + 1);
      }
    }
  } else {
    // ------------------------------------------------------------------ consumers
    cutlass::arch::warpgroup_reg_alloc<232>();
    const int ctid = tid - 128;  // 0..255 over both consumer warpgroups
    const int lane = tid & 31;
    typename C::MmaQK mma_qk;
    typename C::MmaPV mma_pv;
    auto thr_qk = mma_qk.get_thread_slice(ctid);
    auto thr_pv = mma_pv.get_thread_slice(ctid);
    Tensor sVt = make_tensor(make_smem_ptr(ss.v.data()), typename C::SmemLayoutVt{});

    Tensor tSrQ = thr_qk.partition_fragment_A(sQ);   // (MMA, MMA_M, MMA_K, QS)
    Tensor tSrK = thr_qk.partition_fragment_B(sK);   // (MMA, MMA_N, MMA_K, S)
    Tensor tOrV = thr_pv.partition_fragment_B(sVt);  // (MMA, MMA_N, MMA_K, S)
    Tensor tSrS = partition_fragment_C(mma_qk, Shape<Int<kM>, Int<kN>>{});
    Tensor tOrO = partition_fragment_C(mma_pv, Shape<Int<kM>, Int<D>>{});
    static_assert(decltype(size<1>(tSrS))::value == 1 && decltype(size<2>(tSrS))::value == 1);
    static_assert(decltype(size(tSrS))::value == kN / 2);

    // Coordinates (row, col) within the tile of each accumulator element.
    Tensor cS = make_identity_tensor(Shape<Int<kM>, Int<kN>>{});
    Tensor tScS = thr_qk.partition_C(cS);
    Tensor cO = make_identity_tensor(Shape<Int<kM>, Int<D>>{});
    Tensor tOcO = thr_pv.partition_C(cO);
    Tensor Srs = make_tensor(tSrS.data(), rowcol(tSrS.layout()));
    Tensor Crs = make_tensor(tScS.data(), rowcol(tScS.layout()));
    Tensor Ors = make_tensor(tOrO.data(), rowcol(tOrO.layout()));
    Tensor COrs = make_tensor(tOcO.data(), rowcol(tOcO.layout()));
    static_assert(decltype(size<0>(Srs))::value == 2);

    // P as register A-fragments: ((2, 2, 2), 1, kN/16); element order equals the accumulator's.
    Tensor tOrP = make_tensor<Elt>(Layout<Shape<Shape<_2, _2, _2>, _1, Int<kN / 16>>>{});

    // Ping-pong (FlashAttention-3's inter-warpgroup overlap): the two consumer warpgroups take
    // turns issuing their GEMMs — P·V of tile i−1 and S of tile i in one turn — so that one
    // warpgroup's softmax runs while the tensor cores work through the other's GEMMs. Turns pass
    // through two named barriers of 256 threads (the waiting warpgroup syncs on its own, the
    // other arrives on it): warpgroup c waits on barrier c, then arrives on 1 − c. For a row of
    // nv tiles each warpgroup has nv + 1 turns; warpgroup 1 opens with one arrival on barrier 0 (0
    // goes first) and skips its last, so arrivals and waits match on both barriers, row after row
    // (both warpgroups walk the same rows). On an H100 the turns made the forward 1.01–1.10×
    // faster than the same loop without them (bench/RESULTS.md, 2026-12-06).
    const int cw = wg - 1;
    auto my_turn = [&] { cutlass::arch::NamedBarrier::sync(kConsumerThreads, cw); };
    auto pass_turn = [&] { cutlass::arch::NamedBarrier::arrive(kConsumerThreads, 1 - cw); };
    Ring<QS> qring;
    Ring<S> ring;
    for (int n = 0;; ++n, qring.advance()) {
      TxBar::wait(&ss.full_q[qring.stage], qring.phase);
      // Lane 0 reads the note and hands it to its warp: the only reader is then the thread whose
      // arrival on empty_q (release) lets the producer overwrite it, an order compute-sanitizer's
      // racecheck follows (it flagged the 31 other lanes' reads, ordered only through __syncwarp).
      RowNote note{};
      if (lane == 0) note = ss.row[qring.stage];
      const int bh = __shfl_sync(0xffffffffu, note.bh, 0);
      if (bh < 0) break;
      const int q0 = __shfl_sync(0xffffffffu, note.m_block, 0) * kM;
      const int nv = __shfl_sync(0xffffffffu, note.nv, 0), np = __shfl_sync(0xffffffffu, note.np, 0);
      const int qs = qring.stage, slot = __shfl_sync(0xffffffffu, note.slot, 0);
      clear(tOrO);
      float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

      // The loop's pieces, in the order of the ping-pong schedule below.
      auto issue_s = [&](int stage) {  // S = Q Kᵀ (async; wait with warpgroup_wait)
        warpgroup_fence_operand(tSrS);
        warpgroup_arrive();
        mma_qk.accumulate_ = GMMA::ScaleOut::Zero;
        CUTLASS_PRAGMA_UNROLL
        for (int kk = 0; kk < size<2>(tSrQ); ++kk) {
          cute::gemm(mma_qk, tSrQ(_, _, kk, qs), tSrK(_, _, kk, stage), tSrS);
          mma_qk.accumulate_ = GMMA::ScaleOut::One;
        }
        warpgroup_commit_batch();
      };
      auto issue_pv = [&](int stage) {  // O += P V
        warpgroup_fence_operand(tOrO);
        warpgroup_fence_operand(tOrP);
        warpgroup_arrive();
        CUTLASS_PRAGMA_UNROLL
        for (int kk = 0; kk < kN / 16; ++kk) cute::gemm(mma_pv, tOrP(_, _, kk), tOrV(_, _, kk, stage), tOrO);
        warpgroup_commit_batch();
      };
      auto wait_gemms = [&] {
        warpgroup_wait<0>();
        warpgroup_fence_operand(tSrS);
        warpgroup_fence_operand(tOrO);
      };
      auto release = [&](uint64_t* empty) {
        __syncwarp();
        if (lane == 0) Bar::arrive(empty);
      };
      // S of this item's i-th tile (in ring stage `stage`) → P in tOrP; O rescaled by the new
      // running max.
      auto softmax = [&](int i, int stage) {
        // The mask only on partial tiles (the scale comes later, in the exponent); the tile's keys
        // from its note, read as the row's.
        if (i < np) {
          int k0 = 0;
          if (lane == 0) k0 = ss.tile[stage].r0;
          k0 = __shfl_sync(0xffffffffu, k0, 0);
          mask_scores(
              Srs, [&](int r, int c) { return make_int2(q0 + get<0>(Crs(r, c)), k0 + get<1>(Crs(r, c))); }, p.nk,
              p.causal);
        }
        // Online softmax: rows r = 0, 1 of this thread (its quad holds the rest of each row).
        CUTLASS_PRAGMA_UNROLL
        for (int r = 0; r < 2; ++r) {
          float mx = -INFINITY;
          CUTLASS_PRAGMA_UNROLL
          for (int c = 0; c < size<1>(Srs); ++c) mx = fmaxf(mx, Srs(r, c));
          mx = quad_max(mx);
          mx *= p.scale_log2;  // −∞ stays −∞
          const float m_new = fmaxf(m[r], mx);
          const float m_use = m_new == -INFINITY ? 0.f : m_new;  // nothing visible yet
          const float alpha = exp2_ftz(m[r] - m_use);
          float sum = 0.f;
          CUTLASS_PRAGMA_UNROLL
          for (int c = 0; c < size<1>(Srs); ++c) {
            const float e = exp2_ftz(fmaf(Srs(r, c), p.scale_log2, -m_use));
            Srs(r, c) = e;
            sum += e;
          }
          l[r] = l[r] * alpha + sum;  // per-thread partial; the quad's are summed at the end
          m[r] = m_new;
          CUTLASS_PRAGMA_UNROLL
          for (int c = 0; c < size<1>(Ors); ++c) Ors(r, c) *= alpha;
        }
        to_bf16_fragment(tSrS, tOrP);
      };

      if (nv > 0) {
        if (cw == 1) pass_turn();
        TxBar::wait(&ss.full_k[ring.stage], ring.phase);
        my_turn();
        issue_s(ring.stage);
        pass_turn();
        wait_gemms();
        if (nv == 1) release(&ss.empty_q[qs]);  // the row's last S GEMM has read Q
        softmax(0, ring.stage);
        for (int i = 1; i < nv; ++i) {
          const Ring<S> prev = ring;
          ring.advance();
          TxBar::wait(&ss.full_v[prev.stage], prev.phase);
          TxBar::wait(&ss.full_k[ring.stage], ring.phase);
          my_turn();
          issue_pv(prev.stage);
          issue_s(ring.stage);
          pass_turn();
          wait_gemms();
          release(&ss.empty[prev.stage]);
          if (i == nv - 1) release(&ss.empty_q[qs]);
          softmax(i, ring.stage);
        }
        TxBar::wait(&ss.full_v[ring.stage], ring.phase);
        my_turn();
        issue_pv(ring.stage);
        if (cw == 0) pass_turn();
        wait_gemms();
        release(&ss.empty[ring.stage]);
        ring.advance();
      } else {
        release(&ss.empty_q[qs]);
      }

      // Epilogue: O = acc / l, LSE₂ = m + log2 l (LSE = LSE₂ · ln 2). A chunk leaves O in f32 and
      // LSE₂ in its slot for fwd_combine_kernel.
      Elt* og = p.out + static_cast<int64_t>(bh / p.heads) * p.out_sb + static_cast<int64_t>(bh % p.heads) * p.out_sh;
      float* lg = p.lse + static_cast<int64_t>(bh) * p.nq;
      float* part = slot >= 0 ? p.partial + static_cast<int64_t>(slot) * (kM * (D + 1)) : nullptr;
      CUTLASS_PRAGMA_UNROLL
      for (int r = 0; r < 2; ++r) {
        const float lsum = quad_sum(l[r]);
        const float inv = lsum > 0.f ? 1.f / lsum : 0.f;
        const float lse2 = lsum > 0.f ? m[r] + log2f(lsum) : -INFINITY;
        const int local = get<0>(COrs(r, 0)), row = q0 + local;
        if (part != nullptr) {
          if ((lane & 3) == 0) part[kM * D + local] = lse2;
          CUTLASS_PRAGMA_UNROLL
          for (int c = 0; c < size<1>(Ors); c += 2)
            *reinterpret_cast<float2*>(part + local * D + get<1>(COrs(r, c))) =
                make_float2(Ors(r, c) * inv, Ors(r, c + 1) * inv);
        } else if (row < p.nq) {
          if ((lane & 3) == 0) lg[row] = lse2 * 0.69314718055994531f;
          CUTLASS_PRAGMA_UNROLL
          for (int c = 0; c < size<1>(Ors); c += 2) {
            const int col = get<1>(COrs(r, c));
            const __nv_bfloat162 b2 = __float22bfloat162_rn(make_float2(Ors(r, c) * inv, Ors(r, c + 1) * inv));
            *reinterpret_cast<__nv_bfloat162*>(og + static_cast<int64_t>(row) * p.out_srow + col) = b2;
          }
        }
      }
    }
  }
#endif
}

// A split row's O and LSE: its chunks' (O_c, LSE₂_c) merged in chunk order (deterministic),
//   M = max_c LSE₂_c,  W = Σ_c 2^(LSE₂_c − M),  O = Σ_c 2^(LSE₂_c − M) · O_c / W,  LSE = (M + log2 W) · ln 2,
// a row that sees nothing in any chunk (M = −∞) getting O = 0, LSE = −∞. A unit is 16 rows of a
// split row block (SplitItem); the CTAs take the units in turn, a thread a float2 of O at a time.
template <int D>
__global__ void __launch_bounds__(256) fwd_combine_kernel(CUTE_GRID_CONSTANT const Params<D> p, int items, int slots) {
  constexpr int kGroups = kM / kCombineRows;
  constexpr int64_t kSlot = kM * (D + 1);
  const int32_t* plan = p.queue.plan;
  const int units = split_items(plan, items, slots) * kGroups;
  for (int u = blockIdx.x; u < units; u += gridDim.x) {
    const SplitItem si = split_item(plan, items, slots, u / kGroups);
    const int rank = si.item / p.bh, bh = si.item % p.bh, h = bh % p.heads;
    const int q0 = (p.causal ? p.nqb - 1 - rank : rank) * kM, r0 = u % kGroups * kCombineRows;
    Elt* og = p.out + static_cast<int64_t>(bh / p.heads) * p.out_sb + static_cast<int64_t>(h) * p.out_sh;
    const float* base = p.partial + si.first_slot * kSlot;
    for (int i = threadIdx.x; i < kCombineRows * D / 2; i += blockDim.x) {
      const int local = r0 + i / (D / 2), col = i % (D / 2) * 2, row = q0 + local;
      if (row >= p.nq) break;  // i grows with row
      const float* lse2 = base + kM * D + local;
      float mx = -INFINITY;
#pragma unroll 4
      for (int c = 0; c < si.chunks; ++c) mx = fmaxf(mx, lse2[c * kSlot]);
      float w_sum = 0.f;
      float2 o = make_float2(0.f, 0.f);
      if (mx != -INFINITY) {
#pragma unroll 4
        for (int c = 0; c < si.chunks; ++c) {
          const float w = exp2f(lse2[c * kSlot] - mx);
          const float2 oc = *reinterpret_cast<const float2*>(base + c * kSlot + local * D + col);
          w_sum += w;
          o.x += w * oc.x, o.y += w * oc.y;
        }
        o.x /= w_sum, o.y /= w_sum;
      }
      *reinterpret_cast<__nv_bfloat162*>(og + static_cast<int64_t>(row) * p.out_srow + col) = __float22bfloat162_rn(o);
      if (col == 0)
        p.lse[static_cast<int64_t>(bh) * p.nq + row] =
            mx == -INFINITY ? -INFINITY : (mx + log2f(w_sum)) * 0.69314718055994531f;
    }
  }
}

template <int D>
void launch(const Sm90Forward& f, cudaStream_t stream) {
  using C = Cfg<D>;
  const int nq = static_cast<int>(f.nq), nk = static_cast<int>(f.nk), bh = static_cast<int>(f.bh);
  const int nqb = (nq + kM - 1) / kM, items = bh * nqb;
  SPARROW_CHECK(f.out_strides.row >= f.d && f.out_strides.head > 0 && f.out_strides.batch > 0 &&
                    (f.out_strides.row | f.out_strides.head | f.out_strides.batch) % 2 == 0,
                "sm90_forward: O strides (", f.out_strides.batch, ", ", f.out_strides.head, ", ", f.out_strides.row,
                ") must be positive and even (bf16 pairs are stored) with rows ≥ d = ", f.d);
  // Persistent: as many CTAs as SMs (one fits an SM), the plan's entries handed out by the counter.
  const bool planned = f.work_counter != nullptr && f.plan.entries != nullptr;
  const int ctas = f.work_counter == nullptr ? items : sm90_persistent_ctas(items, f.ctas);
  if (f.work_counter != nullptr) SPARROW_CUDA_CHECK(cudaMemsetAsync(f.work_counter, 0, sizeof(int32_t), stream));
  if (planned && !f.plan.made) {
    Sm90PlanItems plan_items;
    plan_items.view = f.view;
    plan_items.counts = f.counts;
    plan_items.bh = bh;
    plan_items.heads = static_cast<int>(f.heads);
    plan_items.nqb = nqb;
    plan_items.nkb = (nk + kN - 1) / kN;
    plan_items.nq = nq;
    plan_items.nk = nk;
    plan_items.causal = f.causal;
    plan_items.rows = true;
    sm90_make_plan(plan_items, f.plan, ctas, stream);
  }
  Params<D> p{make_tma_q<D>(static_cast<const Elt*>(f.q), nq, bh),
              make_tma_kv<D>(static_cast<const Elt*>(f.k), nk, bh),
              make_tma_kv<D>(static_cast<const Elt*>(f.v), nk, bh),
              static_cast<Elt*>(f.out),
              f.out_strides.batch,
              f.out_strides.head,
              f.out_strides.row,
              f.lse,
              nq,
              nk,
              bh,
              static_cast<int>(f.heads),
              nqb,
              f.scale_log2,
              f.causal,
              f.view,
              f.lists,
              f.counts,
              WorkQueue{f.work_counter, planned ? items + f.plan.slots : items, planned ? f.plan.entries : nullptr},
              f.plan.partial};
  constexpr int smem = static_cast<int>(sizeof(typename C::Smem));
  static_assert(smem <= 227 * 1024, "sm_90a: at most 227 KiB of shared memory a CTA");
  static std::atomic<uint64_t> smem_raised{0};
  raise_smem_limit(fwd_kernel<D>, smem, smem_raised);
  fwd_kernel<D><<<static_cast<unsigned>(ctas), kThreads, smem, stream>>>(p);
  SPARROW_CUDA_LAUNCH_CHECK();
  if (planned && f.plan.slots > 0) {  // the split rows' chunks merged
    fwd_combine_kernel<D><<<static_cast<unsigned>(sm90_combine_ctas()), 256, 0, stream>>>(p, items, f.plan.slots);
    SPARROW_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace sm90

bool sm90_built() { return true; }

void sm90_forward(const Sm90Forward& f, cudaStream_t stream) {
  f.d == 64 ? sm90::launch<64>(f, stream) : sm90::launch<128>(f, stream);
}

}  // namespace sparrow::attn::cuda

#endif  // SPARROW_WITH_CUTLASS
