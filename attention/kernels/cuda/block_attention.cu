// CUDA block attention: checks, dispatch between the tensor-core kernels (bf16, head dim 32 /
// 64 / 128, layout block a multiple of 64 — block_attention_mma.cuh) and the plain kernels
// (every other case, f32 and f64 included — block_attention_simple.cuh), and launches on
// sparrow::cuda::stream(). Scratch (LSE₂, Di) comes from the caching allocator via empty().
#include "attention/kernels/cuda/block_attention.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <utility>

#include "attention/kernels/cuda/block_attention_mma.cuh"
#include "attention/kernels/cuda/block_attention_simple.cuh"
#include "attention/kernels/cuda/block_attention_sm90.h"
#include "attention/kernels/cuda/device_layout.cuh"
#include "framework/cuda/runtime.h"
#include "framework/ops/ops.h"

namespace sparrow::attn::cuda {
namespace {

constexpr const char* kOp = "block_attention (cuda)";

bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

struct Problem {
  int64_t b = 0, h = 0, nq = 0, nk = 0, d = 0;
  AttnGeometry geo;
  LayoutView view;
  std::shared_ptr<const DeviceLayout> layout_hold;  // keeps the device CSR alive for the call
  std::shared_ptr<const DeviceBuffer> key_last_hold;
  bool fast = false;           // tensor-core kernels
  bool sm90 = false;           // the sm_90a forward (block_attention_sm90.cu)
  bool persistent = false;     // ... on the persistent grid (the default; SPARROW_BLOCK_ATTN_KERNEL=sm90_grid: not)
  int persistent_ctas = 0;     // its CTAs (SPARROW_SM90_PERSISTENT_CTAS; 0: one an SM)
  int split_chunk = 0;         // its plans' chunk in blocks (SPARROW_SM90_SPLIT; 0 automatic, −1 none)
  int64_t layout_entries = 0;  // Σ nnz over the layout's stored heads
  int fwd_warps = 4;           // forward CTA: 16 query rows per warp
};

// The sm_90a forward serves compute capability 9.0 (sm_90a code runs on nothing else) for bf16,
// head dim 64 / 128, layout block 128 (or no layout), plain key positions. SPARROW_BLOCK_ATTN_KERNEL
// picks: "mma" forces the mma.sync kernels, "sm90" the sm_90a one where it applies, with the forward
// and the backward's dK/dV pass on a persistent grid (one CTA an SM taking rows / key blocks from a
// counter, heaviest first; SPARROW_SM90_PERSISTENT_CTAS caps its CTAs, for tests that want several
// items a CTA), "sm90_grid" the same kernels on a grid of one CTA an item (the same bits: the tests'
// reference); unset, the default below. The persistent grid measured on an H100 (bench/RESULTS.md,
// 2026-12-07) faster forwards in all 10 cells timed at 64K (bigbird and local, D 64 and 128, 1 and
// 10 %): 0.492 → 0.380 ms at 1 % causal D 64, 2–23 % in all; fwd+bwd within ±0.8 %, or faster.
constexpr bool kSm90ByDefault = true;  // verified on an H100: tests/gpu/attention_sm90_gpu_test.cpp, memcheck
// The sm_90a backward (block_attention_sm90_bwd.cu), after an sm_90a forward: one pass with dQ
// summed in f32 by bulk reduce-adds (5 GEMMs a tile; not bit-reproducible) or two deterministic
// passes (7). SPARROW_BLOCK_ATTN_BWD picks: "mma" (the mma.sync backward), "sm90" (the default),
// "sm90_onepass", "sm90_deterministic", "sm90_bwd_pingpong" (the one pass with its consumer
// warpgroups' GEMMs in turns; within noise on an H100, opt-in), "sm90_bwd_smem" (the one pass with
// K and V read from shared memory by every score GEMM at D 64, as before session 16; for
// comparison), "sm90_bwd_kv1" (K and V in registers with one K/V buffer, as in session 16; for
// comparison); unset, SPARROW_BLOCK_ATTN_KERNEL=mma picks mma.sync. At D 64 the one pass holds K
// and V in registers as the score GEMMs' A operands: 1.01–1.04× f+b in each of six runs on an H100
// (bigbird 64K, 5 and 10 %, causal and not; bench/RESULTS.md, session 16); and it keeps two K/V
// buffers, so that a column's K and V load while the previous column's tiles run (the per-column
// wait of the 1 % cells, HOPPER_NOTES "Next" 2): on an H100 1.03–1.08× f+b at 1–3 % (bigbird and
// local 64K, 16K), 0.99–1.02× at 5–10 % and the same step time in training (session 17).
// The one pass runs over head groups whose f32 sums stay within sm90_dq_sums_cap() bytes
// (2 GiB; SPARROW_SM90_DQ_SUMS_CAP overrides it; sm90_dq_sums.h), and the two passes serve where one
// head's sums alone exceed it (beyond 8M tokens at D 64, 4M at D 128, with the 2 GiB cap).
// On an H100 (bench/RESULTS.md, 2026-12-06, "the one-pass sm_90a backward (v2) by default") the
// one pass took fwd+bwd at 64K D 64 from 25.8 to 18.6 ms (local 10 %) and was faster in every
// D 64 cell, 1.2–1.3× at 256K; at D 128 it won 6 of 8 cells (up to 1.22×) and lost the two
// non-causal 10 % ones by 9 %. The grouped launches passed AttentionSm90Gpu.
// BackwardMatchesCpuAndMma's capped cases and took 1M tokens (H 16, D 64, 99 %, causal: 4
// launches of 4 heads) from 343 to 260 ms fwd+bwd against the two passes (session 11).
enum class Sm90Bwd { kNone, kOnePass, kTwoPass };

bool device_is_sm90() {
  static std::mutex mu;
  static int cached[64];
  static bool filled[64] = {};
  const int dev = sparrow::cuda::current_device();
  if (dev < 0 || dev >= 64) return false;
  std::lock_guard<std::mutex> lock(mu);
  if (!filled[dev]) {
    int major = 0, minor = 0;
    SPARROW_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    SPARROW_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    cached[dev] = major == 9 && minor == 0;
    filled[dev] = true;
  }
  return cached[dev] != 0;
}

struct Problem;
bool use_sm90(const Problem& p);

// A count from the environment: 0 when unset or empty; anything but a number ≥ 0 is an error.
int64_t env_count(const char* name) {
  const char* e = std::getenv(name);
  if (e == nullptr || *e == '\0') return 0;
  char* end = nullptr;
  const long long n = std::strtoll(e, &end, 10);
  SPARROW_CHECK(end != e && *end == '\0' && n >= 0 && n <= INT_MAX, name, "=", e, ": expected a count (0 to ", INT_MAX,
                ")");
  return n;
}

// SPARROW_SM90_SPLIT: how the persistent grids' plans split long rows and columns (Sm90Split):
// unset, empty or "auto": items longer than twice a CTA's share of the blocks, in chunks of a
// quarter of a share (at least 8); "off": none split; a count n ≥ 1: every item longer than n
// blocks, in chunks of n (the tests: many chunks on small layouts).
int sm90_split_chunk() {
  const char* e = std::getenv("SPARROW_SM90_SPLIT");
  if (e == nullptr || *e == '\0' || std::strcmp(e, "auto") == 0) return 0;
  if (std::strcmp(e, "off") == 0) return -1;
  const int64_t n = env_count("SPARROW_SM90_SPLIT");
  SPARROW_CHECK(n >= 1, "SPARROW_SM90_SPLIT=", e, ": expected auto, off or a count of blocks >= 1");
  return static_cast<int>(n);
}

// A device buffer derived from a fixed layout (DeviceLayout::fixed: uploaded from the host, never
// changed), kept with the layout under `key` (its first element says what the buffer holds) so that
// later calls, a training step's, reuse what the first one made; `made` then says the buffer already
// holds it. Null for layouts that change (adaptive selection's), and for a new buffer while the
// stream is being captured into a CUDA graph: the kernel that fills it is then only recorded, and
// would fill it only when the graph runs, after a later call had taken it as made.
enum class Kept : int64_t { kFwdLists, kPlanRows, kPlanColumns };
struct KeptBuffer {
  std::shared_ptr<DeviceBuffer> buffer;
  bool made = false;
  std::shared_ptr<const DeviceLayout> layout;
  std::vector<int64_t> key;
  // A buffer this call fills (made false) joins the layout only once the kernel that fills it is
  // queued: a call that throws before then (a failed check or launch) leaves nothing half-made
  // for a later call to take as made.
  void keep() const {
    if (made || !buffer) return;
    std::lock_guard<std::mutex> lock(layout->kept_mu);
    layout->kept.emplace(key, buffer);  // ahead of every later use on the stream
  }
};
KeptBuffer kept_with_layout(const Problem& p, std::vector<int64_t> key, int64_t bytes) {
  KeptBuffer r;
  if (!p.layout_hold || !p.layout_hold->fixed) return r;
  key.push_back(sparrow::cuda::current_device());
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  SPARROW_CUDA_CHECK(cudaStreamIsCapturing(sparrow::cuda::stream(), &capture));
  {
    std::lock_guard<std::mutex> lock(p.layout_hold->kept_mu);
    if (auto it = p.layout_hold->kept.find(key); it != p.layout_hold->kept.end()) {
      r.buffer = it->second;
      r.made = true;
      return r;
    }
  }
  if (capture != cudaStreamCaptureStatusNone) return r;
  r.buffer = std::make_shared<DeviceBuffer>(static_cast<size_t>(bytes), sparrow::cuda::current_device());
  r.layout = p.layout_hold;
  r.key = std::move(key);
  return r;
}

// Room for a persistent grid's plan over `items` items (`rows`: forward rows, else dK/dV columns;
// `view` the launch's layout view, offset to its head group) on the launch's CTAs, and its chunk
// slots of `chunk_floats` each; kept alive by the returned holders until the kernels are queued.
// Over a fixed layout the plan is made once and kept with the layout (kept_with_layout): `made`
// then says the entries already hold it; the launcher calls kept.keep() once the kernels are queued.
struct PlanRoom {
  Tensor scratch, partial;
  KeptBuffer kept;
  Sm90Split split;
};
PlanRoom plan_room(const Problem& p, const LayoutView& view, int64_t bh, int64_t items, bool rows, int64_t chunk_floats,
                   bool head_major, Device dev) {
  PlanRoom r;
  const int ctas = sm90_persistent_ctas(items, p.persistent_ctas);
  r.split.slots = p.split_chunk < 0 ? 0 : sm90_plan_slots(ctas);
  r.split.chunk = p.split_chunk;
  r.split.head_major = head_major;
  const int64_t ints = plan_ints(items, r.split.slots);
  r.kept = kept_with_layout(
      p,
      {static_cast<int64_t>(rows ? Kept::kPlanRows : Kept::kPlanColumns), bh, p.h, p.nq, p.nk, p.geo.causal, ctas,
       p.split_chunk, head_major, reinterpret_cast<int64_t>(view.row_ptr), reinterpret_cast<int64_t>(view.col_ptr)},
      ints * 4);
  r.split.made = r.kept.made;
  if (r.kept.buffer) {
    r.split.entries = static_cast<int32_t*>(r.kept.buffer->data());
  } else {
    r.scratch = empty({ints}, DType::I32, dev);
    r.split.entries = r.scratch.data<int32_t>();
  }
  if (r.split.slots > 0) {
    r.partial = empty({r.split.slots * chunk_floats}, DType::F32, dev);
    r.split.partial = r.partial.data<float>();
  }
  return r;
}

Problem prepare(const Tensor& q, const Tensor& k, const Tensor& v, const BlockAttentionArgs& args) {
  SPARROW_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, kOp, ": q, k, v must be [B, H, N, D], got ",
                shape_str(q.shape()), ", ", shape_str(k.shape()), ", ", shape_str(v.shape()));
  SPARROW_CHECK(q.is_cuda() && k.device() == q.device() && v.device() == q.device(), kOp,
                ": q, k, v must be on one CUDA device, got ", describe(q), ", ", describe(k), ", ", describe(v));
  SPARROW_CHECK(k.dtype() == q.dtype() && v.dtype() == q.dtype() && is_floating(q.dtype()), kOp,
                ": q, k, v need one floating dtype, got ", describe(q), ", ", describe(k), ", ", describe(v));
  SPARROW_CHECK(q.is_contiguous() && k.is_contiguous() && v.is_contiguous(), kOp, ": inputs must be contiguous");
  Problem p;
  p.b = q.size(0);
  p.h = q.size(1);
  p.nq = q.size(2);
  p.d = q.size(3);
  p.nk = k.size(2);
  SPARROW_CHECK(k.size(0) == p.b && k.size(1) == p.h && k.size(3) == p.d && v.shape() == k.shape(), kOp, ": q ",
                shape_str(q.shape()), " k ", shape_str(k.shape()), " v ", shape_str(v.shape()),
                " disagree (want k, v [B, H, Nk, D])");
  SPARROW_CHECK(p.d >= 1 && p.d <= kSimpleMaxD, kOp, ": head dim ", p.d, " outside [1, ", kSimpleMaxD, "]");
  SPARROW_CHECK(p.b * p.h <= 65535, kOp, ": B·H = ", p.b * p.h, " exceeds the grid limit 65535");
  SPARROW_CHECK(args.key_last.empty() || static_cast<int64_t>(args.key_last.size()) == p.nk, kOp, ": key_last has ",
                args.key_last.size(), " entries for ", p.nk, " keys");
  const double scale = args.scale > 0 ? args.scale : 1.0 / std::sqrt(static_cast<double>(p.d));

  AttnGeometry& g = p.geo;
  g.nq = p.nq;
  g.nk = p.nk;
  g.heads = static_cast<int>(p.h);
  g.d = static_cast<int>(p.d);
  g.scale = static_cast<float>(scale);
  g.scale_f64 = scale;
  g.scale_log2 = static_cast<float>(scale * 1.4426950408889634);
  g.causal = args.causal;
  p.key_last_hold = device_key_last(args.key_last);
  g.key_last = p.key_last_hold ? static_cast<const int32_t*>(p.key_last_hold->data()) : nullptr;

  int64_t block = args.block_size > 0 ? args.block_size : 64;
  if (args.device_layout) {
    const LayoutView& V = args.device_layout->view;
    block = V.block;
    SPARROW_CHECK(block > 0 && V.nqb == (p.nq + block - 1) / block && V.nkb == (p.nk + block - 1) / block &&
                      (V.nh == 1 || V.nh == p.h),
                  kOp, ": device layout (", V.nqb, "×", V.nkb, " blocks of ", block, ", ", V.nh,
                  " heads) does not fit q ", shape_str(q.shape()), ", k ", shape_str(k.shape()));
    p.layout_hold = args.device_layout;
    p.view = V;
  } else if (args.layout) {
    const BlockLayout& L = *args.layout;
    const int64_t key_len = L.key_len > 0 ? L.key_len : L.seq_len;
    block = L.block_size;
    SPARROW_CHECK(L.seq_len == p.nq && key_len == p.nk && block > 0 && L.num_q_blocks == (p.nq + block - 1) / block &&
                      L.num_k_blocks == (p.nk + block - 1) / block,
                  kOp, ": layout (seq_len ", L.seq_len, ", key_len ", key_len, ", block ", block, ", ", L.num_q_blocks,
                  "×", L.num_k_blocks, " blocks) does not fit q ", shape_str(q.shape()), ", k ", shape_str(k.shape()));
    p.layout_hold = device_layout(L, p.h);
    p.view = p.layout_hold->view;
  } else {
    p.view = LayoutView{};
    p.view.block = static_cast<int>(block);
  }
  const bool d_ok = p.d == 32 || p.d == 64 || p.d == 128;
  // cp.async moves whole 16-byte chunks: a view whose first element is not 16-byte aligned (an
  // odd storage offset) takes the plain kernels.
  p.fast = q.dtype() == DType::BF16 && d_ok && (!p.layout_hold || block % kTile == 0) && aligned16(q) && aligned16(k) &&
           aligned16(v);
  p.fwd_warps = (!p.layout_hold || block % 128 == 0) ? 8 : 4;
  if (p.layout_hold) p.layout_entries = p.layout_hold->entries;
  p.sm90 = use_sm90(p);
  const char* kernel = std::getenv("SPARROW_BLOCK_ATTN_KERNEL");
  p.persistent = p.sm90 && !(kernel != nullptr && std::strcmp(kernel, "sm90_grid") == 0);
  if (p.persistent) {
    p.persistent_ctas = static_cast<int>(env_count("SPARROW_SM90_PERSISTENT_CTAS"));
    p.split_chunk = sm90_split_chunk();
  }
  return p;
}

bool use_sm90(const Problem& p) {
  bool want = kSm90ByDefault;
  if (const char* e = std::getenv("SPARROW_BLOCK_ATTN_KERNEL")) {
    const bool sm90 = std::strcmp(e, "sm90") == 0 || std::strcmp(e, "sm90_grid") == 0;
    SPARROW_CHECK(sm90 || std::strcmp(e, "mma") == 0 || *e == '\0', "SPARROW_BLOCK_ATTN_KERNEL=", e,
                  ": expected mma, sm90 or sm90_grid");
    if (*e != '\0') want = sm90;
  }
  if (!want || !p.fast || !sm90_built() || p.geo.key_last != nullptr || (p.d != 64 && p.d != 128)) return false;
  if (p.nk == 0) return false;  // a TMA descriptor needs a non-empty tensor
  if (p.layout_hold && p.view.block != kSm90Block) return false;
  // Grids (B·H, query blocks) forward and dQ, (B·H, key blocks) dK/dV: y is at most 65535
  // (past 8.4M tokens the mma.sync kernels, whose grids put the blocks in x, serve).
  const int64_t most_blocks = (std::max(p.nq, p.nk) + kSm90Block - 1) / kSm90Block;
  if (p.nq >= INT_MAX / 2 || p.nk >= INT_MAX / 2 || p.nq == 0 || most_blocks > 65535) return false;
  // The forward's work items, (batch·head, query block) rows, are counted in int.
  if (p.b * p.h * most_blocks >= INT_MAX / 2) return false;  // (and a plan's chunk entries past them)
  return device_is_sm90();
}

void launch_fwd_sm90(const Problem& p, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, Tensor& lse) {
  Sm90Forward f;
  f.q = q.data_ptr();
  f.k = k.data_ptr();
  f.v = v.data_ptr();
  f.out = out.data_ptr();
  f.out_strides = {out.strides()[0], out.strides()[1], out.strides()[2]};
  f.lse = lse.data<float>();
  f.bh = p.b * p.h;
  f.heads = p.h;
  f.nq = p.nq;
  f.nk = p.nk;
  f.d = static_cast<int>(p.d);
  f.scale_log2 = p.geo.scale_log2;
  f.causal = p.geo.causal;
  // The rows' full/partial lists (then their counts, two a row), kept with a fixed layout.
  Tensor lists_scratch;
  KeptBuffer lists_kept;
  if (p.layout_hold) {
    f.view = p.view;
    const int64_t entries = std::max<int64_t>(p.layout_entries, 1);
    const int64_t ints = entries + static_cast<int64_t>(p.view.nh) * p.view.nqb * 2;
    lists_kept = kept_with_layout(p, {static_cast<int64_t>(Kept::kFwdLists), p.nq, p.nk, p.geo.causal}, ints * 4);
    int32_t* lists = nullptr;
    if (lists_kept.buffer) {
      lists = static_cast<int32_t*>(lists_kept.buffer->data());
    } else {
      lists_scratch = empty({ints}, DType::I32, q.device());
      lists = lists_scratch.data<int32_t>();
    }
    if (!lists_kept.made) {
      sm90_build_lists(p.view, p.nq, p.nk, p.geo.causal, lists, lists + entries, sparrow::cuda::stream());
      lists_kept.keep();
    }
    f.lists = lists;
    f.counts = lists + entries;
  }
  Tensor work_counter;
  PlanRoom plan;
  if (p.persistent) {
    work_counter = empty({1}, DType::I32, q.device());
    f.work_counter = work_counter.data<int32_t>();
    f.ctas = p.persistent_ctas;
    // The rows not split or long head by head (under causality each head's later rows first), as
    // the dK/dV pass takes its columns: the CTAs at work at once then share one head's K and V in
    // L2 rather than reading every head's. On an H100 (bench/RESULTS.md, session 17) forwards up
    // to 1.37× faster (256K D 128 causal 10 %: 65.5 → 47.6 ms), f+b 1.01–1.08× in 15 of 18 cells
    // at 5–10 %; it lost 1–2 % at 64K D 64 bigbird 10 % non-causal, and the 1 % cells were within
    // ±0.5 %. SPARROW_SM90_FWD_ORDER=rows: query block-major with the heads fastest, the order
    // before (for comparison); "heads" the default.
    const char* o = std::getenv("SPARROW_SM90_FWD_ORDER");
    const bool by_rows = o != nullptr && std::strcmp(o, "rows") == 0;
    SPARROW_CHECK(by_rows || o == nullptr || *o == '\0' || std::strcmp(o, "heads") == 0, "SPARROW_SM90_FWD_ORDER=", o,
                  ": expected heads or rows");
    plan = plan_room(p, f.view, f.bh, f.bh * ((p.nq + kSm90Block - 1) / kSm90Block), true, sm90_fwd_chunk_floats(p.d),
                     !by_rows, q.device());
    f.plan = plan.split;
  }
  sm90_forward(f, sparrow::cuda::stream());
  plan.kept.keep();
}

// The one pass's (batch·head) rows per launch, or 0 for the two passes.
int64_t sm90_onepass_rows(const Problem& p, int64_t nq_pad) {
  return sm90_onepass_group(p.b * p.h, p.h, nq_pad, p.d, sm90_dq_sums_cap());
}

// Which sm_90a backward runs, and over how many (batch·head) rows a launch (all of them for the
// two passes).
struct Sm90BwdPlan {
  Sm90Bwd kind = Sm90Bwd::kNone;
  int64_t rows = 0;
  bool turns = false;            // one pass: sm90_bwd_pingpong
  bool kv_in_registers = false;  // one pass at D 64, unless sm90_bwd_smem or the turns
  int kv_buffers = 1;            // ... 2 with K and V in registers, unless sm90_bwd_kv1
};

Sm90BwdPlan sm90_backward_plan(const Problem& p, int64_t nq_pad) {
  if (!p.sm90) return {};
  const int64_t bh = p.b * p.h, rows = sm90_onepass_rows(p, nq_pad);
  // The two passes where one head's sums exceed the cap.
  const bool one_pass = rows > 0;
  const Sm90BwdPlan grouped = one_pass ? Sm90BwdPlan{Sm90Bwd::kOnePass, rows, false, p.d == 64, p.d == 64 ? 2 : 1}
                                       : Sm90BwdPlan{Sm90Bwd::kTwoPass, bh};
  const Sm90BwdPlan two_pass{Sm90Bwd::kTwoPass, bh};
  if (const char* b = std::getenv("SPARROW_BLOCK_ATTN_BWD"); b != nullptr && *b != '\0') {
    if (std::strcmp(b, "sm90") == 0 || std::strcmp(b, "sm90_onepass") == 0) return grouped;
    if (std::strcmp(b, "sm90_deterministic") == 0) return two_pass;
    if (std::strcmp(b, "sm90_bwd_pingpong") == 0) return Sm90BwdPlan{grouped.kind, grouped.rows, one_pass, false};
    if (std::strcmp(b, "sm90_bwd_smem") == 0) return Sm90BwdPlan{grouped.kind, grouped.rows, false, false};
    if (std::strcmp(b, "sm90_bwd_kv1") == 0)
      return Sm90BwdPlan{grouped.kind, grouped.rows, false, grouped.kv_in_registers};
    SPARROW_CHECK(std::strcmp(b, "mma") == 0, "SPARROW_BLOCK_ATTN_BWD=", b,
                  ": expected mma, sm90, sm90_onepass, sm90_deterministic, sm90_bwd_pingpong, sm90_bwd_smem or "
                  "sm90_bwd_kv1");
    return {};
  }
  const char* e = std::getenv("SPARROW_BLOCK_ATTN_KERNEL");
  return e != nullptr && std::strcmp(e, "mma") == 0 ? Sm90BwdPlan{} : grouped;
}

// The sm_90a backward over groups of plan.rows (batch·head) rows: each group's tensors from its
// first row on, its layout heads from h0 = first row mod H.
void launch_bwd_sm90(const Sm90BwdPlan& plan, const Problem& p, const Tensor& q, const Tensor& k, const Tensor& v,
                     const Tensor& dout, const Tensor& lse2, const Tensor& di, int64_t nq_pad, Tensor& dq, Tensor& dk,
                     Tensor& dv) {
  const int64_t bh = p.b * p.h, group = plan.rows;
  const bool one_pass = plan.kind == Sm90Bwd::kOnePass;
  Tensor dq_sums;  // one pass: f32 dQ sums of one group, held until the kernels are queued (stream-ordered pool)
  if (one_pass) dq_sums = empty({sm90_dq_sums_floats(group, nq_pad, p.d)}, DType::F32, q.device());
  Tensor work_counter;  // the persistent dK/dV grid's (each launch zeroes it on the stream)
  // The key blocks head by head: 1.04–1.30× f+b at 5–10 % density on an H100 (bench/RESULTS.md,
  // session 15). SPARROW_SM90_BWD_ORDER=kb: key block-major with the heads fastest, the order
  // before (for comparison); "heads" the default.
  const char* o = std::getenv("SPARROW_SM90_BWD_ORDER");
  const bool by_heads = o == nullptr || *o == '\0' || std::strcmp(o, "heads") == 0;
  SPARROW_CHECK(by_heads || std::strcmp(o, "kb") == 0, "SPARROW_SM90_BWD_ORDER=", o, ": expected heads or kb");
  if (p.persistent) work_counter = empty({1}, DType::I32, q.device());
  // A bf16 tensor's storage from element `elements` on.
  auto from = [](const Tensor& t, int64_t elements) { return static_cast<char*>(t.data_ptr()) + 2 * elements; };
  for (int64_t r0 = 0; r0 < bh; r0 += group) {
    const int64_t q_off = r0 * p.nq * p.d, k_off = r0 * p.nk * p.d;
    Sm90Backward b;
    if (one_pass) b.dq_accum = dq_sums.data<float>();
    b.turns = plan.turns;
    b.kv_in_registers = plan.kv_in_registers;
    b.kv_buffers = plan.kv_buffers;
    if (p.persistent) {
      b.work_counter = work_counter.data<int32_t>();
      b.ctas = p.persistent_ctas;
    }
    b.q = from(q, q_off);
    b.k = from(k, k_off);
    b.v = from(v, k_off);
    b.dout = from(dout, q_off);
    b.lse2 = lse2.data<float>() + r0 * nq_pad;
    b.di = di.data<float>() + r0 * nq_pad;
    b.dq = from(dq, q_off);
    b.dk = from(dk, k_off);
    b.dv = from(dv, k_off);
    b.bh = group;
    b.heads = std::min(group, p.h);
    b.nq = p.nq;
    b.nk = p.nk;
    b.nq_pad = nq_pad;
    b.d = static_cast<int>(p.d);
    b.scale = p.geo.scale;
    b.scale_log2 = p.geo.scale_log2;
    b.causal = p.geo.causal;
    if (p.layout_hold) {
      b.view = p.view;
      if (b.view.nh > 1) {  // per-head layout: this group's heads start at h0 (offsets stay biased)
        const int64_t h0 = r0 % p.h;
        b.view.row_ptr += h0 * (b.view.nqb + 1);
        b.view.col_ptr += h0 * (b.view.nkb + 1);
      }
    }
    PlanRoom plan;  // this group's (a per-head layout gives each group its own)
    if (p.persistent) {
      plan = plan_room(p, b.view, group, group * ((p.nk + kSm90Block - 1) / kSm90Block), false,
                       sm90_dkdv_chunk_floats(p.d), by_heads, q.device());
      b.plan = plan.split;
    }
    sm90_backward(b, sparrow::cuda::stream());
    plan.kept.keep();
  }
}

// Raises a kernel's dynamic shared-memory limit (once per kernel and device; kernels of one
// signature share a pointer type, so the record is keyed by the function's address).
template <class Kernel>
void allow_smem(Kernel kernel, int bytes) {
  static std::mutex mu;
  static std::set<std::pair<const void*, int>> done;
  const std::pair<const void*, int> key{reinterpret_cast<const void*>(kernel), sparrow::cuda::current_device()};
  std::lock_guard<std::mutex> lock(mu);
  if (done.count(key)) return;
  SPARROW_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  // Left to itself the driver sized the SM's shared memory for one CTA of the forward (a 64 KiB
  // carveout for 55 KiB; Nsight Compute: 12.5% occupancy). Ask for the largest carveout, so as
  // many CTAs fit as the registers allow.
  SPARROW_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
  done.insert(key);
}

__nv_bfloat16* bfp(const Tensor& t) { return static_cast<__nv_bfloat16*>(t.data_ptr()); }

unsigned tiles(int64_t n, int64_t t) { return static_cast<unsigned>((n + t - 1) / t); }

template <int D, int NW>
void launch_fwd(const Problem& p, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, Tensor& lse) {
  constexpr int smem = fwd_smem_bytes<D, NW>();
  allow_smem(attn_fwd_mma<D, NW>, smem);
  dim3 grid(tiles(p.nq, 16 * NW), static_cast<unsigned>(p.b * p.h));
  attn_fwd_mma<D, NW><<<grid, 32 * NW, smem, sparrow::cuda::stream()>>>(bfp(q), bfp(k), bfp(v), bfp(out),
                                                                        lse.data<float>(), p.view, p.geo);
  SPARROW_CUDA_LAUNCH_CHECK();
}

template <int D>
void launch_fwd_d(const Problem& p, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, Tensor& lse) {
  if (p.fwd_warps == 8)
    launch_fwd<D, 8>(p, q, k, v, out, lse);
  else
    launch_fwd<D, 4>(p, q, k, v, out, lse);
}

template <int D>
void launch_bwd(const Problem& p, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& dout,
                const Tensor& lse2, const Tensor& di, int64_t nq_pad, Tensor& dq, Tensor& dk, Tensor& dv) {
  const unsigned bh = static_cast<unsigned>(p.b * p.h);
  if (p.nk > 0) {
    constexpr int smem = dkdv_smem_bytes<D>();
    allow_smem(attn_dkdv_mma<D>, smem);
    attn_dkdv_mma<D><<<dim3(tiles(p.nk, kTile), bh), 128, smem, sparrow::cuda::stream()>>>(
        bfp(q), bfp(k), bfp(v), bfp(dout), lse2.data<float>(), di.data<float>(), bfp(dk), bfp(dv), nq_pad, p.view,
        p.geo);
    SPARROW_CUDA_LAUNCH_CHECK();
  }
  if (p.nq > 0) {
    constexpr int smem = dq_smem_bytes<D>();
    allow_smem(attn_dq_mma<D>, smem);
    attn_dq_mma<D><<<dim3(tiles(p.nq, kTile), bh), 128, smem, sparrow::cuda::stream()>>>(
        bfp(q), bfp(k), bfp(v), bfp(dout), lse2.data<float>(), di.data<float>(), bfp(dq), nq_pad, p.view, p.geo);
    SPARROW_CUDA_LAUNCH_CHECK();
  }
}

template <class T>
void simple_forward(const Problem& p, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, Tensor& lse) {
  using A = typename SimpleAcc<T>::type;
  dim3 grid(tiles(p.nq, kSimpleThreads), static_cast<unsigned>(p.b * p.h));
  attn_fwd_simple<T><<<grid, kSimpleThreads, 0, sparrow::cuda::stream()>>>(
      static_cast<const T*>(q.data_ptr()), static_cast<const T*>(k.data_ptr()), static_cast<const T*>(v.data_ptr()),
      static_cast<T*>(out.data_ptr()), static_cast<A*>(lse.data_ptr()), p.view, p.geo);
  SPARROW_CUDA_LAUNCH_CHECK();
}

template <class T>
void simple_backward(const Problem& p, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                     const Tensor& lse, const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv) {
  using A = typename SimpleAcc<T>::type;
  const int64_t rows = p.b * p.h * p.nq;
  Tensor di = empty({rows}, lse.dtype(), q.device());
  auto c = [](const Tensor& t) { return static_cast<const T*>(t.data_ptr()); };
  attn_di_simple<T><<<sparrow::cuda::grid_for(rows, 128), 128, 0, sparrow::cuda::stream()>>>(
      c(out), c(dout), static_cast<A*>(di.data_ptr()), rows, static_cast<int>(p.d));
  SPARROW_CUDA_LAUNCH_CHECK();
  const unsigned bh = static_cast<unsigned>(p.b * p.h);
  const A* lse_p = static_cast<const A*>(lse.data_ptr());
  const A* di_p = static_cast<const A*>(di.data_ptr());
  if (p.nq > 0) {
    attn_dq_simple<T><<<dim3(tiles(p.nq, kSimpleThreads), bh), kSimpleThreads, 0, sparrow::cuda::stream()>>>(
        c(q), c(k), c(v), c(dout), lse_p, di_p, static_cast<T*>(dq.data_ptr()), p.view, p.geo);
    SPARROW_CUDA_LAUNCH_CHECK();
  }
  if (p.nk > 0) {
    attn_dkdv_simple<T><<<dim3(tiles(p.nk, kSimpleThreads), bh), kSimpleThreads, 0, sparrow::cuda::stream()>>>(
        c(q), c(k), c(v), c(dout), lse_p, di_p, static_cast<T*>(dk.data_ptr()), static_cast<T*>(dv.data_ptr()), p.view,
        p.geo);
    SPARROW_CUDA_LAUNCH_CHECK();
  }
}

DType lse_dtype(DType t) { return t == DType::F64 ? DType::F64 : DType::F32; }

// dout / out in q's dtype, contiguous and 16-byte aligned (the kernels read one element type in
// whole 16-byte rows): t itself when it already is, else a copy.
Tensor as_input(const Tensor& t, const Tensor& q, const char* what) {
  SPARROW_CHECK(t.shape() == q.shape() && t.device() == q.device(), kOp, ": ", what, " ", describe(t),
                " does not match q ", describe(q));
  if (t.dtype() == q.dtype() && t.is_contiguous() && aligned16(t)) return t;
  Tensor c = empty(q.shape(), q.dtype(), q.device());
  copy_(c, t);
  return c;
}

// As as_input, but any row and head strides are kept (d contiguous, rows 16-byte aligned as the
// fast kernels' preprocessing reads them).
Tensor as_rows(const Tensor& t, const Tensor& q, const char* what) {
  SPARROW_CHECK(t.shape() == q.shape() && t.device() == q.device(), kOp, ": ", what, " ", describe(t),
                " does not match q ", describe(q));
  const bool rows16 =
      t.strides()[3] == 1 && t.strides()[0] % 8 == 0 && t.strides()[1] % 8 == 0 && t.strides()[2] % 8 == 0;
  if (t.dtype() == q.dtype() && rows16 && aligned16(t)) return t;
  return as_input(t, q, what);
}

StridedRows strided_rows(const Tensor& t) {
  return {static_cast<const __nv_bfloat16*>(t.data_ptr()), t.strides()[0], t.strides()[1], t.strides()[2], t.size(1)};
}

}  // namespace

bool block_attention_sm90_available() { return sm90_built() && device_is_sm90(); }

BlockAttentionForward block_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                              const BlockAttentionArgs& args) {
  Problem p = prepare(q, k, v, args);
  BlockAttentionForward r;
  // The sm_90a kernel writes O rows at any row and head strides: token-major when asked, so the
  // caller's permute to [B, Nq, H, D] is contiguous (saves it a copy of O).
  r.out = p.sm90 && args.token_major_out ? permute(empty({p.b, p.nq, p.h, p.d}, q.dtype(), q.device()), {0, 2, 1, 3})
                                         : empty(q.shape(), q.dtype(), q.device());
  r.lse = empty({p.b, p.h, p.nq}, lse_dtype(q.dtype()), q.device());
  if (p.b * p.h == 0 || p.nq == 0) return r;
  if (p.sm90) {
    launch_fwd_sm90(p, q, k, v, r.out, r.lse);
    return r;
  }
  if (p.fast) {
    switch (p.d) {
      case 32:
        launch_fwd_d<32>(p, q, k, v, r.out, r.lse);
        break;
      case 64:
        launch_fwd_d<64>(p, q, k, v, r.out, r.lse);
        break;
      default:
        launch_fwd_d<128>(p, q, k, v, r.out, r.lse);
        break;
    }
    return r;
  }
  switch (q.dtype()) {
    case DType::BF16:
      simple_forward<__nv_bfloat16>(p, q, k, v, r.out, r.lse);
      break;
    case DType::F32:
      simple_forward<float>(p, q, k, v, r.out, r.lse);
      break;
    case DType::F64:
      simple_forward<double>(p, q, k, v, r.out, r.lse);
      break;
    default:
      fail(kOp, ": unsupported dtype ", dtype_name(q.dtype()));
  }
  return r;
}

BlockAttentionGrads block_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                             const Tensor& lse, const Tensor& dout, const BlockAttentionArgs& args) {
  Problem p = prepare(q, k, v, args);
  // The fast kernels' preprocessing reads O and dO at any row strides (O token-major, dO the
  // gradient of its permute) and hands the main kernels contiguous dO rows.
  Tensor o = p.fast ? as_rows(out, q, "out") : as_input(out, q, "out");
  Tensor g = p.fast ? as_rows(dout, q, "dout") : as_input(dout, q, "dout");
  SPARROW_CHECK(lse.device() == q.device() && lse.dtype() == lse_dtype(q.dtype()) && lse.is_contiguous() &&
                    lse.numel() == p.b * p.h * p.nq,
                kOp, ": lse ", describe(lse), " does not match q ", describe(q));
  BlockAttentionGrads r;
  // One buffer where q, k, v agree in shape: q, k, v sliced from one tensor then get its gradient
  // with no copy (empty_adjacent).
  const std::vector<Tensor> grads = empty_adjacent({q, k, v});
  r.dq = grads[0];
  r.dk = grads[1];
  r.dv = grads[2];
  if (p.b * p.h == 0 || (p.nq == 0 && p.nk == 0)) return r;
  if (p.fast) {
    const int64_t nq_pad = (p.nq + kTile - 1) / kTile * kTile;
    const int64_t rows = p.b * p.h * nq_pad;
    Tensor lse2 = empty({rows}, DType::F32, q.device());
    Tensor di = empty({rows}, DType::F32, q.device());
    const Tensor g_rows = g.is_contiguous() ? g : empty(q.shape(), q.dtype(), q.device());
    attn_bwd_prep<<<sparrow::cuda::grid_for(rows * p.d / 8, 256), 256, 0, sparrow::cuda::stream()>>>(
        strided_rows(o), strided_rows(g), g.is_contiguous() ? nullptr : bfp(g_rows), lse.data<float>(),
        lse2.data<float>(), di.data<float>(), p.b * p.h, p.nq, nq_pad, static_cast<int>(p.d));
    SPARROW_CUDA_LAUNCH_CHECK();
    g = g_rows;
    if (const Sm90BwdPlan plan = sm90_backward_plan(p, nq_pad); plan.kind != Sm90Bwd::kNone) {
      launch_bwd_sm90(plan, p, q, k, v, g, lse2, di, nq_pad, r.dq, r.dk, r.dv);
      return r;
    }
    switch (p.d) {
      case 32:
        launch_bwd<32>(p, q, k, v, g, lse2, di, nq_pad, r.dq, r.dk, r.dv);
        break;
      case 64:
        launch_bwd<64>(p, q, k, v, g, lse2, di, nq_pad, r.dq, r.dk, r.dv);
        break;
      default:
        launch_bwd<128>(p, q, k, v, g, lse2, di, nq_pad, r.dq, r.dk, r.dv);
        break;
    }
    return r;
  }
  switch (q.dtype()) {
    case DType::BF16:
      simple_backward<__nv_bfloat16>(p, q, k, v, o, lse, g, r.dq, r.dk, r.dv);
      break;
    case DType::F32:
      simple_backward<float>(p, q, k, v, o, lse, g, r.dq, r.dk, r.dv);
      break;
    case DType::F64:
      simple_backward<double>(p, q, k, v, o, lse, g, r.dq, r.dk, r.dv);
      break;
    default:
      fail(kOp, ": unsupported dtype ", dtype_name(q.dtype()));
  }
  return r;
}

}  // namespace sparrow::attn::cuda
