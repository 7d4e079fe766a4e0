// sm_90a (Hopper) block attention: TMA + mbarrier pipeline + wgmma, warp-specialised; forward in
// block_attention_sm90.cu, backward in block_attention_sm90_bwd.cu. Included only from .cu files.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "attention/kernels/cuda/block_attention_sm90_items.cuh"
#include "attention/kernels/cuda/block_attention_walk.cuh"
#include "attention/kernels/cuda/sm90_dq_sums.h"

namespace sparrow::attn::cuda {

constexpr int kSm90Block = 128;  // query rows per CTA = keys per tile = the layout block it serves

// The persistent grids' work plan (block_attention_sm90_plan.cu, made on the stream before each
// launch): the order the CTAs take the items in, and the long items split into chunks.
//
// Why split: a CTA walks an item (a forward row, a dK/dV column) alone, so an item longer than a
// CTA's share of all the blocks sets the launch's time. Bigbird's global blocks are such items at
// low density: at 64K tokens, 1 %, H 16 the global key block's column holds 512 blocks (1024
// tiles) against ~430 a CTA, and on an H100 the causal backward took as long as the non-causal
// one (2.2 ms; bench/RESULTS.md, session 15). By default an item longer than twice a CTA's share
// is split, in chunks of a quarter of a share (block_attention_sm90_plan.cu says why). A chunk
// covers consecutive blocks of the walk; it leaves its partial result (forward: O normalised and
// LSE₂ of its rows; dK/dV: the f32 sums) in a slot, and a combine kernel adds an item's chunks in
// chunk order: deterministic.
//
// Order: first the split items' chunks, then the other long items (longer than a quarter of a
// CTA's share: started last, one would leave the grid waiting on its CTA), then the rest — head by
// head (head_major, both passes' default: the CTAs then share one head's K and V, or Q, dO and the
// dQ sums, in L2) or in item order (forward rows: causal rows latest-first, the heads fastest).
constexpr int kSm90SlotsPerCta = 4;
struct Sm90Split {
  int32_t* entries = nullptr;  // room for plan_ints(items, slots) (block_attention_sm90_items.cuh)
  float* partial = nullptr;    // room for slots × sm90_{fwd,dkdv}_chunk_floats(d)
  int slots = 0;               // chunk slots (sm90_plan_slots)
  int chunk = 0;               // blocks a chunk: 0 automatic, > 0 every item longer split, < 0 none split
  bool head_major = false;
  bool made = false;  // entries already hold this plan (kept with a fixed layout): no plan kernel
};
inline int sm90_plan_slots(int ctas) { return kSm90SlotsPerCta * ctas; }
inline int64_t sm90_fwd_chunk_floats(int64_t d) { return kSm90Block * (d + 1); }  // O rows, then their LSE₂
inline int64_t sm90_dkdv_chunk_floats(int64_t d) { return 2 * kSm90Block * d; }   // dK rows, then dV rows

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
  // sm90_forward zeroes on the stream, in the order of `plan` (entries and partial set); null: a
  // CTA a (batch·head, query block) row.
  int32_t* work_counter = nullptr;
  Sm90Split plan;
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
  int kv_buffers = 1;            // ... with 2: the next column's K and V load while this one's tiles run
  // Set: the dK/dV pass on the persistent grid (as Sm90Forward's; zeroed by sm90_backward), in the
  // order of `plan` (entries and partial set).
  int32_t* work_counter = nullptr;
  Sm90Split plan;
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
// The items a plan orders and their lengths in layout blocks: forward rows (item = rank · bh + bh
// index, the row's walk: counts set) or dK/dV columns (item = kb · bh + bh index).
struct Sm90PlanItems {
  LayoutView view;
  const int32_t* counts = nullptr;  // forward: sm90_build_lists' counts (layouts only)
  int bh = 0, heads = 1, nqb = 0, nkb = 0, nq = 0, nk = 0;
  bool causal = false;
  bool rows = false;  // forward rows, else dK/dV columns
};
// Fills split.entries for `ctas` CTAs (one CTA on the stream).
void sm90_make_plan(const Sm90PlanItems& items, const Sm90Split& split, int ctas, cudaStream_t stream);
// CTAs of a combine kernel: each loops over the split items' 16-row groups (most plans split a few
// items, or none; a grid of a CTA a slot would launch hundreds of CTAs that return at once).
int sm90_combine_ctas();
// CTAs of a persistent grid over `items` items: one an SM (one fits an SM), or `cap` when > 0
// (SPARROW_SM90_PERSISTENT_CTAS), never more than the items. The plan and the launch both ask here.
int sm90_persistent_ctas(int64_t items, int cap);
// Launches the forward (d 64 or 128, no key_last); the caller has checked the shape.
void sm90_forward(const Sm90Forward& f, cudaStream_t stream);
// Launches the backward (nq, nk > 0): a dK/dV pass over key blocks (with dQ's sums when one pass),
// then a dQ pass over query blocks (two passes) or dQ from the sums (one pass).
void sm90_backward(const Sm90Backward& b, cudaStream_t stream);
// Whether the dK/dV pass's dQᵀ band accumulator is laid out across a warpgroup's threads as the
// staging stores assume (block_attention_sm90_bwd.cu, add_band); host code, for the tests.
bool sm90_band_layout_as_assumed();

}  // namespace sparrow::attn::cuda
