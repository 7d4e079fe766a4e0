// The persistent sm_90a grids' work plan (block_attention_sm90.h, Sm90Split): one CTA on the stream
// before each launch, reading the items' lengths from the layout on the device (so adaptive
// layouts and CUDA graphs need nothing from the host).
//
//   lengths: each item's, read once from the layout (eight loads in flight a thread) and kept in
//            the plan, which the later passes and the combine kernels read
//   total  = Σ lengths, share = total / ctas;  long: length > share / 4
//   split  = automatic: items longer than 2 · share, in chunks of max(share / 4, kMinChunk) — so
//            the split items' chunks (taken first) spread over the grid; or the caller's chunk,
//            splitting every item longer than it. The chunk is doubled until the split items'
//            chunks, Σ ⌈length / chunk⌉, fit the slots (automatic: at most 4 · ctas / 2 + their
//            count, always). Why 2 · share (bench/RESULTS.md, session 16, H100): an item up to
//            ~1.3 shares, started first, was no slower whole (16K bigbird 5 %, 10 % causal: the
//            split cost 3–4 %; 4K × 4: 9 %), while items of ~2.8 shares (bigbird's global key
//            block at 1 % causal, 64K; at 1 %, 16K) took f+b 1.26–1.31× faster split.
//   entries: the split items' chunks (slot = entry index), the other long items, then the rest
//            (head by head, or in item order); the remaining room {−1, 0, 0, −1}; and the split
//            items' first slots and their count for the combine kernels.
// Each pass walks the items kRun consecutive ones a thread and places them by a block-wide scan.
// Cost on an H100 at 64K, H 16 (ncu, bench/RESULTS.md session 16): 37 µs when every pass read the
// lengths from the layout one load at a time, 27–33 µs with them read once — one CTA's passes and
// barriers are latency-bound either way, which is why a fixed layout keeps its plans
// (DeviceLayout::kept) and a training step makes none.
#include <algorithm>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "attention/kernels/cuda/block_attention_sm90.h"
#include "attention/kernels/cuda/block_attention_sm90_items.cuh"
#include "framework/cuda/runtime.h"

namespace sparrow::attn::cuda {
namespace {

constexpr int kThreads = 1024, kRun = 8;
// Below this many blocks a chunk's partial result and its share of the combine (128 rows of f32
// written and read back) would weigh against the chunk's own work.
constexpr unsigned long long kMinChunk = 8;

__device__ int item_length(const Sm90PlanItems& it, int item) {
  const int bhi = item % it.bh, h = bhi % it.heads, major = item / it.bh;
  if (!it.rows) return column_blocks(it.view, h, major, it.nqb, it.causal).n;
  const int m_block = it.causal ? it.nqb - 1 - major : major;
  return row_walk(it.view, nullptr, it.counts, h, m_block, kSm90Block, it.nq, it.nk, it.causal).nv;
}

__global__ void __launch_bounds__(kThreads)
    plan_kernel(Sm90PlanItems it, int ctas, int chunk_wanted, bool head_major, int slots, int32_t* plan) {
  using Scan = cub::BlockScan<int, kThreads>;
  using Sum = cub::BlockReduce<unsigned long long, kThreads>;
  __shared__ union {
    typename Scan::TempStorage scan;
    typename Sum::TempStorage sum;
  } tmp;
  __shared__ unsigned long long long_from, split_over, chunk, sum_sh;
  __shared__ int placed, splits;
  const int majors = it.rows ? it.nqb : it.nkb;
  const int n = it.bh * majors;
  int4* entries = reinterpret_cast<int4*>(plan);
  int32_t* lengths = plan + plan_lengths_at(n, slots);
  int32_t* firsts = plan + plan_firsts_at(n, slots);
#pragma unroll 8
  for (int i = threadIdx.x; i < n; i += kThreads) lengths[i] = item_length(it, i);
  __syncthreads();                     // (global writes, read back below by other threads of this CTA)
  auto sum_over_items = [&](auto f) {  // Σ f(length) over all items, in every thread
    unsigned long long mine = 0;
#pragma unroll 8
    for (int i = threadIdx.x; i < n; i += kThreads) mine += f(static_cast<unsigned long long>(lengths[i]));
    const unsigned long long s = Sum(tmp.sum).Sum(mine);
    __syncthreads();  // the reduction's storage is free again
    if (threadIdx.x == 0) sum_sh = s;
    __syncthreads();
    return sum_sh;
  };
  const unsigned long long total = sum_over_items([](unsigned long long l) { return l; });
  if (threadIdx.x == 0) {
    const unsigned long long share = total / static_cast<unsigned>(ctas);
    long_from = share / 4 + 1;
    chunk = chunk_wanted < 0 ? ~0ull : chunk_wanted > 0 ? chunk_wanted : max(long_from, kMinChunk);
    split_over = chunk_wanted == 0 ? max(2 * share, chunk) : chunk;  // (off: ~0, none)
    placed = splits = 0;
  }
  __syncthreads();
  for (;;) {  // the chunk, doubled until the split items' chunks fit the slots
    const unsigned long long c = chunk, over = split_over;
    const unsigned long long need =
        sum_over_items([c, over](unsigned long long l) { return l > over ? (l + c - 1) / c : 0; });
    if (need <= static_cast<unsigned long long>(slots)) break;
    if (threadIdx.x == 0) chunk = 2 * c, split_over = max(over, 2 * c);
    __syncthreads();
  }
  const unsigned long long c = chunk, over = split_over;
  // Pass 0: split items (chunks, in item order); 1: other long items; 2: the rest.
  for (int pass = 0; pass < 3; ++pass) {
    for (int j0 = 0; j0 < n; j0 += kThreads * kRun) {
      int item[kRun], len[kRun], count = 0, split = 0;
#pragma unroll
      for (int r = 0; r < kRun; ++r) {
        const int j = j0 + static_cast<int>(threadIdx.x) * kRun + r;
        item[r] = j >= n ? -1 : pass == 2 && head_major ? (j % majors) * it.bh + j / majors : j;
        len[r] = item[r] >= 0 ? lengths[item[r]] : 0;
        const unsigned long long l = static_cast<unsigned long long>(len[r]);
        const int which = l > over ? 0 : l >= long_from ? 1 : 2;
        if (which != pass) item[r] = -1;
        if (item[r] >= 0) {
          count += pass == 0 ? static_cast<int>((l + c - 1) / c) : 1;
          split += pass == 0 ? 1 : 0;
        }
      }
      int at = 0, taken = 0, split_at = 0, split_taken = 0;
      Scan(tmp.scan).ExclusiveSum(count, at, taken);
      __syncthreads();  // the scan's storage is reused at once
      Scan(tmp.scan).ExclusiveSum(split, split_at, split_taken);
      at += placed;
      split_at += splits;
#pragma unroll
      for (int r = 0; r < kRun; ++r) {
        if (item[r] < 0) continue;
        if (pass == 0) {  // the split items' chunks come first: entry index = slot
          firsts[split_at++] = at;
          for (int first = 0; first < len[r]; first += static_cast<int>(c), ++at)
            entries[at] = make_int4(item[r], first, min(len[r], first + static_cast<int>(c)), at);
        } else {
          entries[at++] = make_int4(item[r], 0, len[r], -1);
        }
      }
      __syncthreads();  // every thread has read `placed` and `splits` (and the scan's storage is free)
      if (threadIdx.x == 0) placed += taken, splits += split_taken;
      __syncthreads();
    }
  }
  for (int i = placed + static_cast<int>(threadIdx.x); i < n + slots; i += kThreads)
    entries[i] = make_int4(-1, 0, 0, -1);
  if (threadIdx.x == 0) plan[plan_splits_at(n, slots)] = splits;
}

}  // namespace

void sm90_make_plan(const Sm90PlanItems& items, const Sm90Split& split, int ctas, cudaStream_t stream) {
  plan_kernel<<<1, kThreads, 0, stream>>>(items, ctas, split.chunk, split.head_major, split.slots, split.entries);
  SPARROW_CUDA_LAUNCH_CHECK();
}

int sm90_combine_ctas() { return 2 * sparrow::cuda::sm_count(); }

int sm90_persistent_ctas(int64_t items, int cap) {
  return static_cast<int>(std::min<int64_t>(items, cap > 0 ? cap : sparrow::cuda::sm_count()));
}

}  // namespace sparrow::attn::cuda
