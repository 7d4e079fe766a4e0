// The sm_90a block-attention forward (attention/kernels/cuda/block_attention_sm90.cu) against the
// CPU reference (f32 on the same bf16-rounded inputs) and against the mma.sync forward, for
// every pattern at block 128, dense, causal and not, ragged lengths, several batches and heads,
// head dims 64 and 128. Outputs land in 0xFF-poisoned memory (NaN), so an element the kernel
// skips fails. The kernel is chosen by SPARROW_BLOCK_ATTN_KERNEL (sm90: the persistent grid / sm90_grid / mma), set
// per call.
// Skips without a GPU, and (with a note) on a device the sm_90a kernel does not serve.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "attention/attention_config.h"
#include "attention/kernels/block_attention.h"
#include "attention/kernels/cpu/block_attention.h"
#include "attention/kernels/cuda/block_attention_lists.h"
#include "attention/kernels/cuda/sm90_dq_sums.h"
#include "attention/layout/block_layout.h"
#include "common/gradcheck.h"
#include "common/poison.h"
#include "framework/core/rng.h"

#ifdef SPARROW_WITH_CUDA
#include "attention/kernels/cuda/block_attention.h"
#include "attention/kernels/cuda/block_attention_sm90.h"
#include "framework/cuda/runtime.h"
#endif

using namespace sparrow;
using namespace sparrow::attn;

namespace {

// The host half of the list builder (the device runs the same code): partial blocks first, then
// full, none dropped that some element sees, and the dense arithmetic walk equal to it.
TEST(AttentionSm90Lists, PartialFirstThenFullMatchesBruteForce) {
  for (bool causal : {false, true})
    for (int64_t n : {128, 200, 1000, 4096}) {
      const int64_t B = 128, nb = (n + B - 1) / B;
      for (int64_t qb = 0; qb < nb; ++qb) {
        std::vector<int32_t> cols(nb);
        for (int64_t j = 0; j < nb; ++j) cols[j] = static_cast<int32_t>(j);
        std::vector<int32_t> out(nb, -1);
        int32_t cnt[2];
        attn::cuda::build_row_lists(cols.data(), nb, qb, B, n, n, causal, out.data(), cnt);
        // Brute force: per block, does any (i, j) pair see / not see?
        std::vector<int> kind(nb, 0);  // 0 skip, 1 partial, 2 full
        for (int64_t kb = 0; kb < nb; ++kb) {
          int64_t seen = 0, total = 0;
          for (int64_t i = qb * B; i < std::min(n, qb * B + B); ++i)
            for (int64_t j = kb * B; j < kb * B + B; ++j) {
              ++total;
              seen += j < n && (!causal || j <= i);
            }
          kind[kb] = seen == 0 ? 0 : (seen == total ? 2 : 1);
        }
        int64_t np = 0, nv = 0;
        for (int64_t kb = 0; kb < nb; ++kb) {
          if (kind[kb] != 0) ++nv;
          if (kind[kb] == 1) ++np;
        }
        SCOPED_TRACE(::testing::Message() << "n=" << n << " qb=" << qb << (causal ? " causal" : ""));
        ASSERT_EQ(cnt[1], nv);
        // A block the builder calls full must be fully visible; every partial block must be visible.
        for (int32_t t = 0; t < cnt[1]; ++t) {
          ASSERT_NE(kind[out[t]], 0);
          if (t >= cnt[0]) {
            ASSERT_EQ(kind[out[t]], 2) << "block " << out[t] << " listed full";
          }
        }
        ASSERT_GE(cnt[0], np);
        attn::cuda::DenseRowLists d(qb, B, n, n, causal);
        ASSERT_EQ(d.nv, cnt[1]);
        for (int64_t t = 0; t < d.nv; ++t) {
          ASSERT_NE(kind[d.block_at(t)], 0);
          if (t >= d.np) {
            ASSERT_EQ(kind[d.block_at(t)], 2);
          }
        }
      }
    }
}

// The tiles of the sm_90a backward are uneven (dK/dV: 64 query rows × 128 keys; dQ: 128 × 64):
// classify_tile against brute force over every tile position, ragged and not, causal and not.
// The one pass's head groups: the largest row count within the cap that divides B·H and divides or
// is a multiple of H; 0 when one head's sums exceed the cap.
TEST(AttentionSm90Lists, OnePassHeadGroupsStayWithinTheCap) {
  using attn::cuda::sm90_dq_sums_floats;
  using attn::cuda::sm90_onepass_group;
  const double head = 4.0 * static_cast<double>(sm90_dq_sums_floats(1, 2097152, 64));
  EXPECT_DOUBLE_EQ(head, 2097152.0 * 64 * 4);                              // 4 bytes per element of dQ: 537 MB
  EXPECT_EQ(sm90_onepass_group(12, 12, 2097152, 64, 2.0 * (1 << 30)), 4);  // 2M tokens, gpt12: 3 launches
  EXPECT_EQ(sm90_onepass_group(16, 16, 65536, 64, 2.0 * (1 << 30)), 16);   // 64K: one launch
  EXPECT_EQ(sm90_onepass_group(2 * 6, 6, 1024, 64, 12 * head), 12);        // B 2 × H 6 at once
  EXPECT_EQ(sm90_onepass_group(2 * 6, 6, 2097152, 64, 5 * head), 3);       // 4 and 5 divide neither
  EXPECT_EQ(sm90_onepass_group(4 * 6, 6, 2097152, 64, 12 * head), 12);     // two batch elements a launch
  EXPECT_EQ(sm90_onepass_group(7, 7, 2097152, 64, 6.9 * head), 1);         // a prime head count
  EXPECT_EQ(sm90_onepass_group(16, 16, 2097152, 64, 0.5 * head), 0);       // the two passes
}

// The dQ sums' layout (sm90_dq_sums.h): each tile's D × 64 run holds every (column, row) once; an
// aligned group of 4 rows stays 4 consecutive floats in order (the epilogue reads float4s); and a
// warp's float2 stores of the staging copy (lanes: 8 columns × 4 row pairs, the wgmma accumulator's
// order) take the fewest wavefronts, 2 (a bank serves one 4-byte word a wavefront).
TEST(AttentionSm90Lists, DqSumsSwizzleIsABijectionWithTwoWavefrontStores) {
  using attn::cuda::kSm90DqSumsRows;
  using attn::cuda::sm90_dq_sums_at;
  for (int d : {64, 128})
    for (int64_t tile : {0, 3}) {
      std::vector<int> seen(static_cast<size_t>(d) * kSm90DqSumsRows, 0);
      const int64_t base = tile * d * kSm90DqSumsRows;
      for (int col = 0; col < d; ++col)
        for (int row = 0; row < kSm90DqSumsRows; ++row) {
          const int64_t at = sm90_dq_sums_at(tile, d, col, row) - base;
          ASSERT_GE(at, 0);
          ASSERT_LT(at, static_cast<int64_t>(seen.size()));
          ++seen[static_cast<size_t>(at)];
          if (row % 4 != 0)
            EXPECT_EQ(at, sm90_dq_sums_at(tile, d, col, row - 1) - base + 1) << col << " " << row;
          else
            EXPECT_EQ(at % 4, 0) << col << " " << row;
        }
      for (int n : seen) ASSERT_EQ(n, 1);
    }
  for (int c0 = 0; c0 < 64; c0 += 8)
    for (int r0 = 0; r0 < 64; r0 += 8) {
      std::vector<std::vector<int64_t>> words(32);  // bank → distinct words addressed
      for (int lane = 0; lane < 32; ++lane)
        for (int half = 0; half < 2; ++half) {
          const int64_t w = sm90_dq_sums_at(0, 0, c0 + lane / 4, r0 + 2 * (lane % 4)) + half;
          auto& b = words[static_cast<size_t>(w % 32)];
          if (std::find(b.begin(), b.end(), w) == b.end()) b.push_back(w);
        }
      size_t wavefronts = 0;
      for (const auto& b : words) wavefronts = std::max(wavefronts, b.size());
      EXPECT_EQ(wavefronts, 2u) << "columns " << c0 << "+, rows " << r0 << "+";
    }
}

// add_band's staging addresses follow the wgmma accumulator's thread layout (checked on the host,
// from CuTe's partition of the same TiledMMA: no GPU needed).
TEST(AttentionSm90Lists, BandAccumulatorLayoutIsAsTheStagingStoresAssume) {
#ifdef SPARROW_WITH_CUDA
  if (!attn::cuda::sm90_built()) GTEST_SKIP() << "built without CUTLASS: no sm_90a kernel";
  EXPECT_TRUE(attn::cuda::sm90_band_layout_as_assumed());
#else
  GTEST_SKIP() << "built without CUDA: no sm_90a kernel";
#endif
}

TEST(AttentionSm90Lists, ClassifyTileMatchesBruteForce) {
  using attn::cuda::BlockKind;
  for (bool causal : {false, true})
    for (int64_t n : {64, 128, 200, 1000})
      for (auto [rows, cols] : {std::pair<int64_t, int64_t>{64, 128}, {128, 64}, {128, 128}})
        for (int64_t q0 = 0; q0 < n + rows; q0 += rows)
          for (int64_t k0 = 0; k0 < n + cols; k0 += cols) {
            int64_t seen = 0, total = 0;
            for (int64_t i = q0; i < std::min(n, q0 + rows); ++i)
              for (int64_t j = k0; j < k0 + cols; ++j) {
                ++total;
                seen += j < n && (!causal || j <= i);
              }
            const BlockKind want =
                seen == 0 ? BlockKind::kSkip : (seen == total ? BlockKind::kFull : BlockKind::kPartial);
            const BlockKind got = attn::cuda::classify_tile(q0, rows, k0, cols, n, n, causal);
            SCOPED_TRACE(::testing::Message() << "n=" << n << " tile " << rows << "x" << cols << " at (" << q0 << ", "
                                              << k0 << ")" << (causal ? " causal" : ""));
            // Skip and full must be exact (a skipped tile with a visible element loses it; a full
            // tile with a masked one computes it); a partial tile only costs the mask.
            if (want == BlockKind::kSkip || got == BlockKind::kSkip) {
              ASSERT_EQ(static_cast<int>(got), static_cast<int>(want));
            }
            if (got == BlockKind::kFull) {
              ASSERT_EQ(static_cast<int>(want), static_cast<int>(BlockKind::kFull));
            }
          }
}

// The sm_90a producers' walk (NoteWalk, as the dK/dV pass drives it: 64-row query tiles of the
// column's blocks against a 128-key block) hands the consumers exactly the tiles classify_tile
// does not skip, in order, with the mask flag where it is partial and "last" on the last one only:
// the consumers' loops end on that flag alone.
TEST(AttentionSm90Lists, NoteWalkHandsOnTheUnskippedTilesAndMarksTheLast) {
  using attn::cuda::BlockKind;
  std::mt19937 rng(7);
  int walks = 0, tiles_seen = 0;
  for (bool causal : {false, true})
    for (int64_t n : {64, 100, 128, 200, 1000, 1030}) {
      const int64_t nb = (n + 127) / 128;
      for (int64_t kb = 0; kb < nb; ++kb)
        for (int draw = 0; draw < 4; ++draw) {
          // The column's query blocks: all of them, or a random subset (the layout's), in order.
          std::vector<int32_t> blocks;
          for (int32_t qb = 0; qb < nb; ++qb)
            if (draw == 0 || rng() % 2 == 0) blocks.push_back(qb);
          const int64_t k0 = kb * 128;
          auto r0_of = [&](int t) { return blocks[t / 2] * 128 + (t & 1) * 64; };
          auto kind_of = [&](int t) { return attn::cuda::classify_tile(r0_of(t), 64, k0, 128, n, n, causal); };
          const int tiles = static_cast<int>(2 * blocks.size());
          std::vector<std::pair<int32_t, bool>> want;
          for (int t = 0; t < tiles; ++t)
            if (kind_of(t) != BlockKind::kSkip) want.emplace_back(r0_of(t), kind_of(t) == BlockKind::kPartial);
          SCOPED_TRACE(::testing::Message()
                       << "n=" << n << " kb=" << kb << " draw " << draw << (causal ? " causal" : ""));
          attn::cuda::NoteWalk walk(tiles, kind_of, r0_of);
          ASSERT_EQ(walk.done(), want.empty());
          for (size_t i = 0; i < want.size(); ++i) {
            ASSERT_FALSE(walk.done()) << "the walk ended after " << i << " of " << want.size() << " tiles";
            const attn::cuda::TileNote note = walk.take();
            EXPECT_EQ(note.r0, want[i].first) << "tile " << i;
            EXPECT_EQ(note.partial(), want[i].second) << "tile " << i;
            EXPECT_EQ(note.last(), i + 1 == want.size()) << "tile " << i;
          }
          EXPECT_TRUE(walk.done());
          ++walks;
          tiles_seen += static_cast<int>(want.size());
        }
    }
  EXPECT_GT(tiles_seen, 1000);
  std::printf("[   INFO   ] %d walks, %d tiles\n", walks, tiles_seen);
}

#ifdef SPARROW_WITH_CUDA
const Device kGpu = Device::cuda(0);

Tensor on(const Tensor& t, Device d, DType dt) {
  Tensor r = empty(t.shape(), dt, d);
  copy_(r, t);
  return r;
}

double norm_ratio(const std::vector<double>& a, const std::vector<double>& b, size_t* nonfinite) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) {
      ++*nonfinite;
      continue;
    }
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return a.size() != b.size() ? INFINITY : std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}

BlockAttentionForward forward_with(const char* kernel, const Tensor& q, const Tensor& k, const Tensor& v,
                                   const BlockAttentionArgs& a) {
  setenv("SPARROW_BLOCK_ATTN_KERNEL", kernel, 1);
  sparrow::testing::poison_allocator(
      q.device(), {static_cast<size_t>(q.numel()) * 2, static_cast<size_t>(q.size(0) * q.size(1) * q.size(2)) * 4});
  BlockAttentionForward f = attn::cuda::block_attention_forward(q, k, v, a);
  sparrow::cuda::synchronize();
  unsetenv("SPARROW_BLOCK_ATTN_KERNEL");
  return f;
}

std::shared_ptr<const BlockLayout> pattern_layout(const std::string& name, int64_t N, int64_t H, bool causal) {
  if (name == "dense") return nullptr;
  AttentionConfig cfg;
  cfg.backend = "block_sparse";
  cfg.block_size = 128;
  cfg.sparsity = 0.0;
  cfg.pattern.names = {name};
  cfg.pattern.window = 1;
  cfg.pattern.stride = 3;
  cfg.pattern.global_blocks = 1;
  cfg.pattern.random_blocks = 2;
  cfg.pattern.per_head = true;
  return get_layout(cfg, N, H, causal);
}

bool sm90_here() {
  if (!attn::cuda::block_attention_sm90_available()) {
    std::printf("[   NOTE   ] the sm_90a forward does not serve this device/build; skipped\n");
    return false;
  }
  return true;
}

// One case of the sm_90a sweeps: a pattern at block 128 (or dense), B 2, H 3, N, D, causal or not.
struct Sm90Case {
  std::string pattern;
  int64_t B = 2, H = 3, N = 0, D = 0;
  bool causal = false;
  Generator gen;
  std::shared_ptr<const BlockLayout> layout;
  BlockAttentionArgs args;
  // [B, H, N, D] random, rounded to bf16, on the host: the CPU reference's inputs too.
  Tensor host_input() { return on(randn({B, H, N, D}, gen, DType::F32), Device::cpu(), DType::BF16); }
};

// Runs body on every pattern (and dense) × N × D 64/128 × causal/not; the case's generator is
// seeded seed + N + D + 7·causal + its index. Returns the number of cases.
int for_each_sm90_case(std::initializer_list<int64_t> sizes, uint64_t seed,
                       const std::function<void(Sm90Case&)>& body) {
  const std::vector<std::string> patterns{"dense", "local",  "dilated", "strided",
                                          "fixed", "global", "random",  "bigbird"};
  int cases = 0;
  for (int64_t N : sizes)
    for (int64_t D : {64, 128})
      for (bool causal : {false, true})
        for (const std::string& pat : patterns) {
          Sm90Case c{pat, 2, 3, N, D, causal, Generator(seed + N + D + causal * 7 + cases), nullptr, {}};
          c.layout = pattern_layout(pat, N, c.H, causal);
          c.args.layout = c.layout.get();
          c.args.block_size = 128;
          c.args.causal = causal;
          c.args.scale = 1.0 / std::sqrt(static_cast<double>(D));
          SCOPED_TRACE(::testing::Message() << pat << " N=" << N << " D=" << D << (causal ? " causal" : ""));
          body(c);
          ++cases;
        }
  return cases;
}
#endif

}  // namespace

TEST(AttentionSm90Gpu, ForwardMatchesCpuAndMma) {
  SPARROW_REQUIRE_GPU();
#ifdef SPARROW_WITH_CUDA
  if (!sm90_here()) return;
  const int cases = for_each_sm90_case({128, 200, 1000, 4096}, 1000, [](Sm90Case& c) {
    Tensor qh = c.host_input(), kh = c.host_input(), vh = c.host_input();
    const BlockAttentionArgs& a = c.args;
    Tensor q = on(qh, kGpu, DType::BF16), k = on(kh, kGpu, DType::BF16), v = on(vh, kGpu, DType::BF16);
    BlockAttentionForward fm = forward_with("mma", q, k, v, a);
    const std::vector<double> om = fm.out.to_vector(), lm = fm.lse.to_vector();
    BlockAttentionForward fs = forward_with("sm90_grid", q, k, v, a);
    const std::vector<double> os = fs.out.to_vector(), ls = fs.lse.to_vector();
    // The persistent grid (the default) with no row split does each row's arithmetic in the same
    // order as the grid of a CTA a row: the same bits, with a CTA an SM and with 3 CTAs (many rows
    // each: the Q buffers and the rings wrap across rows). With rows split into chunks of 1 or 2
    // blocks (many chunks, merged by fwd_combine_kernel; 3 CTAs: 12 slots, so the plan widens the
    // chunks to fit) the same bits twice, and O and LSE within tolerance below.
    // The rows head by head (the default) or with the heads fastest (SPARROW_SM90_FWD_ORDER=rows):
    // the order changes which CTA takes a row, never a row's arithmetic.
    for (const char* ctas : {"", "3"}) {
      setenv("SPARROW_SM90_PERSISTENT_CTAS", ctas, 1);
      setenv("SPARROW_SM90_SPLIT", "off", 1);
      for (const char* order : {"heads", "rows"}) {
        setenv("SPARROW_SM90_FWD_ORDER", order, 1);
        BlockAttentionForward fp = forward_with("sm90", q, k, v, a);
        EXPECT_TRUE(fp.out.to_vector() == os && fp.lse.to_vector() == ls)
            << "persistent forward (" << (*ctas ? ctas : "SM count") << " CTAs, " << order
            << " order) differs from the grid of a CTA a row";
      }
      unsetenv("SPARROW_SM90_FWD_ORDER");
      for (const char* chunk : {"1", "2"}) {
        SCOPED_TRACE(::testing::Message() << "rows split into chunks of " << chunk << " blocks, CTAs: " << ctas);
        setenv("SPARROW_SM90_SPLIT", chunk, 1);
        BlockAttentionForward f1 = forward_with("sm90", q, k, v, a), f2 = forward_with("sm90", q, k, v, a);
        const std::vector<double> o1 = f1.out.to_vector(), l1 = f1.lse.to_vector();
        EXPECT_TRUE(o1 == f2.out.to_vector() && l1 == f2.lse.to_vector()) << "split forward not reproducible";
        size_t bad = 0;
        EXPECT_LT(norm_ratio(o1, om, &bad), 2e-2) << "split O vs mma.sync";
        EXPECT_EQ(bad, 0u) << "split O elements unwritten (NaN poison) or non-finite";
        double lse_err = 0;
        for (size_t i = 0; i < l1.size(); ++i) {
          if (std::isinf(lm[i]))
            EXPECT_TRUE(std::isinf(l1[i]) && l1[i] < 0) << "split LSE " << i << " = " << l1[i] << ", want −∞";
          else
            lse_err = std::max(lse_err, std::abs(l1[i] - lm[i]));
        }
        EXPECT_LT(lse_err, 2e-2) << "split LSE vs mma.sync";
      }
      unsetenv("SPARROW_SM90_SPLIT");
      unsetenv("SPARROW_SM90_PERSISTENT_CTAS");
    }
    size_t bad = 0;
    EXPECT_LT(norm_ratio(os, om, &bad), 2e-2) << "O vs mma.sync";
    EXPECT_EQ(bad, 0u) << "O elements unwritten (NaN poison) or non-finite";
    double lse_err = 0;
    size_t lse_bad = 0;
    for (size_t i = 0; i < ls.size(); ++i) {
      if (std::isinf(lm[i])) {
        lse_bad += !(std::isinf(ls[i]) && ls[i] < 0);
        continue;
      }
      if (!std::isfinite(ls[i])) {
        ++lse_bad;
        continue;
      }
      lse_err = std::max(lse_err, std::abs(ls[i] - lm[i]));
    }
    EXPECT_EQ(lse_bad, 0u) << "LSE unwritten, non-finite, or −∞ disagreement";
    EXPECT_LT(lse_err, 2e-2) << "LSE vs mma.sync";
    if (c.N <= 1000 || c.pattern != "dense") {
      // CPU reference: f32 on the same rounded inputs.
      const BlockAttentionForward fc = attn::cpu::block_attention_forward(
          on(qh, Device::cpu(), DType::F32), on(kh, Device::cpu(), DType::F32), on(vh, Device::cpu(), DType::F32), a);
      size_t b2 = 0;
      EXPECT_LT(norm_ratio(os, fc.out.to_vector(), &b2), 2e-2) << "O vs CPU";
      const std::vector<double> lc = fc.lse.to_vector();
      double e2 = 0;
      for (size_t i = 0; i < lc.size(); ++i)
        if (std::isfinite(lc[i])) e2 = std::max(e2, std::abs(ls[i] - lc[i]));
      EXPECT_LT(e2, 2e-2) << "LSE vs CPU";
    }
  });
  std::printf("[   INFO   ] %d sm_90a forward cases, each against mma.sync and the CPU\n", cases);
#endif
}

// Both sm_90a backwards — one pass with f32 dQ sums by bulk reduce-add, and two deterministic passes (dK/dV over
// key blocks, dQ over query blocks) — against the mma.sync backward and the CPU reference's (f32
// on the same rounded inputs), given one forward's O and LSE: every pattern at block 128, dense,
// causal and not, ragged N, B 2, H 3, D 64 and 128; the one pass also over head groups and with its
// GEMMs in turns (sm90_bwd_pingpong), with K and V read from shared memory (sm90_bwd_smem; the one pass
// holds them in registers at D 64, in two K/V buffers) and with one K/V buffer (sm90_bwd_kv1). dQ, dK and dV land in
// poisoned memory, so an element the kernels skip fails; the deterministic one gives the same bits twice.
TEST(AttentionSm90Gpu, BackwardMatchesCpuAndMma) {
  SPARROW_REQUIRE_GPU();
#ifdef SPARROW_WITH_CUDA
  if (!sm90_here()) return;
  const int cases = for_each_sm90_case({128, 200, 1000, 2048}, 5000, [](Sm90Case& c) {
    Tensor qh = c.host_input(), kh = c.host_input(), vh = c.host_input(), gh = c.host_input();
    const BlockAttentionArgs& a = c.args;
    Tensor q = on(qh, kGpu, DType::BF16), k = on(kh, kGpu, DType::BF16), v = on(vh, kGpu, DType::BF16),
           dout = on(gh, kGpu, DType::BF16);
    const BlockAttentionForward f = forward_with("mma", q, k, v, a);
    // rows_per_launch > 0: the one pass's sums capped to that many (batch·head) rows' worth, so it
    // runs over head groups (per head: layout heads from an offset; 3 = H: groups across the batch).
    // persistent_ctas set: the dK/dV pass on the persistent grid with that many CTAs ("": one an SM);
    // else on the grid of a CTA a key block (sm90_grid, the reference).
    // split: the persistent plan's SPARROW_SM90_SPLIT (chunks of that many blocks; "off": none).
    auto backward_with = [&](const char* kernel, int64_t rows_per_launch = 0, const char* persistent_ctas = nullptr,
                             const char* split = "off") {
      setenv("SPARROW_BLOCK_ATTN_BWD", kernel, 1);
      setenv("SPARROW_BLOCK_ATTN_KERNEL", persistent_ctas != nullptr ? "sm90" : "sm90_grid", 1);
      if (persistent_ctas != nullptr) setenv("SPARROW_SM90_PERSISTENT_CTAS", persistent_ctas, 1);
      setenv("SPARROW_SM90_SPLIT", split, 1);
      const int64_t nq_pad = (c.N + 63) / 64 * 64;
      if (rows_per_launch > 0)
        setenv("SPARROW_SM90_DQ_SUMS_CAP",
               std::to_string(4 * attn::cuda::sm90_dq_sums_floats(rows_per_launch, nq_pad, c.D)).c_str(), 1);
      sparrow::testing::poison_allocator(kGpu, {static_cast<size_t>(q.numel()) * 2});
      BlockAttentionGrads r = attn::cuda::block_attention_backward(q, k, v, f.out, f.lse, dout, a);
      sparrow::cuda::synchronize();
      unsetenv("SPARROW_BLOCK_ATTN_BWD");
      unsetenv("SPARROW_SM90_DQ_SUMS_CAP");
      unsetenv("SPARROW_BLOCK_ATTN_KERNEL");
      unsetenv("SPARROW_SM90_PERSISTENT_CTAS");
      unsetenv("SPARROW_SM90_SPLIT");
      return std::vector<std::vector<double>>{r.dq.to_vector(), r.dk.to_vector(), r.dv.to_vector()};
    };
    const auto gm = backward_with("mma"), gd = backward_with("sm90_deterministic");
    EXPECT_TRUE(backward_with("sm90_deterministic") == gd) << "two-pass backward not reproducible";
    // The persistent dK/dV grid with no column split does each key block's arithmetic in the same
    // order: the same bits. Split into chunks (summed in chunk order by dkdv_combine_kernel): the
    // same bits twice.
    for (const char* ctas : {"", "3"}) {
      EXPECT_TRUE(backward_with("sm90_deterministic", 0, ctas) == gd)
          << "persistent two-pass backward (" << (*ctas ? ctas : "SM count") << " CTAs) differs";
      EXPECT_TRUE(backward_with("sm90_deterministic", 0, ctas, "1") ==
                  backward_with("sm90_deterministic", 0, ctas, "1"))
          << "split two-pass backward (" << (*ctas ? ctas : "SM count") << " CTAs) not reproducible";
    }
    std::vector<std::vector<double>> gc;
    if (c.N <= 1000 || c.pattern != "dense") {
      auto f32 = [](const Tensor& t) { return on(t, Device::cpu(), DType::F32); };
      BlockAttentionGrads ref = attn::cpu::block_attention_backward(f32(qh), f32(kh), f32(vh), f32(f.out),
                                                                    on(f.lse, Device::cpu(), DType::F32), f32(gh), a);
      gc = {ref.dq.to_vector(), ref.dk.to_vector(), ref.dv.to_vector()};
    }
    const char* names[3] = {"dQ", "dK", "dV"};
    struct Variant {
      const char* kind;
      int64_t rows;
      const char* persistent_ctas = nullptr;
      const char* split = "off";
    };
    for (const auto& [kind, rows, ctas, split] :
         std::vector<Variant>{{"sm90_onepass", 0},
                              {"sm90_onepass", 1},
                              {"sm90_onepass", 3},
                              {"sm90_deterministic", 0},
                              {"sm90_bwd_pingpong", 0},  // the one pass with its warpgroups' GEMMs in turns
                              {"sm90_bwd_pingpong", 3},
                              {"sm90_onepass", 0, ""},  // the persistent dK/dV grid, a CTA an SM
                              {"sm90_onepass", 3, "3"},
                              {"sm90_bwd_pingpong", 0, "3"},
                              {"sm90_bwd_smem", 0},  // the one pass with K and V in shared memory (D 64)
                              {"sm90_bwd_smem", 3, "3"},
                              // columns split into chunks of 1 or 2 blocks (the default plan splits
                              // only columns longer than a quarter of a CTA's share)
                              {"sm90_onepass", 0, "", "1"},
                              {"sm90_onepass", 3, "3", "2"},
                              {"sm90_deterministic", 0, "", "2"},
                              {"sm90_bwd_smem", 0, "3", "1"},
                              // one K/V buffer (D 64; else the default one pass)
                              {"sm90_bwd_kv1", 0},
                              {"sm90_bwd_kv1", 3, "3"},
                              {"sm90_bwd_kv1", 0, "", "1"}}) {
      SCOPED_TRACE(::testing::Message() << rows << " (batch·head) rows a launch (0: all)"
                                        << (ctas ? " persistent, CTAs: " : "") << (ctas ? ctas : "")
                                        << ", split: " << split);
      const bool reference = std::strcmp(kind, "sm90_deterministic") == 0 && ctas == nullptr;
      const auto gs = reference ? gd : backward_with(kind, rows, ctas, split);
      for (int t = 0; t < 3; ++t) {
        size_t bad = 0;
        EXPECT_LT(norm_ratio(gs[t], gm[t], &bad), 2e-2) << kind << " " << names[t] << " vs mma.sync";
        EXPECT_EQ(bad, 0u) << kind << " " << names[t] << " elements unwritten (NaN poison) or non-finite";
        if (!gc.empty()) {
          size_t b2 = 0;
          EXPECT_LT(norm_ratio(gs[t], gc[t], &b2), 2e-2) << kind << " " << names[t] << " vs CPU";
        }
      }
    }
  });
  std::printf("[   INFO   ] %d sm_90a backward cases\n", cases);
#endif
}

// The backward consumes the sm_90a forward's O and LSE: gradients through autograd equal the
// mma.sync path's on the same inputs (with SPARROW_BLOCK_ATTN_KERNEL=sm90 the backward is the
// sm_90a one too).
TEST(AttentionSm90Gpu, BackwardThroughSm90Forward) {
  SPARROW_REQUIRE_GPU();
#ifdef SPARROW_WITH_CUDA
  if (!sm90_here()) return;
  for (bool causal : {false, true}) {
    const int64_t B = 2, H = 3, N = 1000, D = 64;
    Generator g(77 + causal);
    auto make = [&]() { return on(randn({B, H, N, D}, g, DType::F32), kGpu, DType::BF16); };
    Tensor q = make(), k = make(), v = make(), w = make();
    auto L = pattern_layout("bigbird", N, H, causal);
    BlockAttentionArgs a;
    a.layout = L.get();
    a.causal = causal;
    std::vector<std::vector<double>> res[2];
    const char* kernels[2] = {"sm90", "mma"};
    for (int r = 0; r < 2; ++r) {
      setenv("SPARROW_BLOCK_ATTN_KERNEL", kernels[r], 1);
      Tensor qi = q.detach(), ki = k.detach(), vi = v.detach();
      qi.requires_grad_();
      ki.requires_grad_();
      vi.requires_grad_();
      Tensor o = block_attention(qi, ki, vi, a);
      o.backward(w);
      res[r] = {o.to_vector(), qi.grad().to_vector(), ki.grad().to_vector(), vi.grad().to_vector()};
      unsetenv("SPARROW_BLOCK_ATTN_KERNEL");
    }
    for (int t = 0; t < 4; ++t) {
      size_t bad = 0;
      SCOPED_TRACE(::testing::Message() << "tensor " << t << (causal ? " causal" : ""));
      EXPECT_LT(norm_ratio(res[0][t], res[1][t], &bad), 2e-2);
      EXPECT_EQ(bad, 0u);
    }
  }
#endif
}

// O asked for token-major (BlockAttentionArgs::token_major_out): the sm_90a forward writes it at
// [B, N, H, D] strides, so the model's permute is contiguous (no copy), and the backward takes the
// gradient through that permute (strided dO): the same bits as the contiguous O. Under the
// deterministic backward every gradient's bits too; under the one pass (dQ summed by bulk
// reduce-adds in no fixed order) dQ to its rounding.
TEST(AttentionSm90Gpu, TokenMajorOutputIsTheSameBitsWithoutACopy) {
  SPARROW_REQUIRE_GPU();
#ifdef SPARROW_WITH_CUDA
  if (!sm90_here()) return;
  for (const char* bwd : {"sm90_deterministic", "sm90"})
    for (int64_t D : {64, 128})
      for (bool causal : {false, true}) {
        SCOPED_TRACE(::testing::Message() << bwd << " D=" << D << (causal ? " causal" : ""));
        const int64_t B = 2, H = 3, N = 1000;
        Generator g(91 + D + causal);
        auto make = [&]() { return on(randn({B, H, N, D}, g, DType::F32), kGpu, DType::BF16); };
        Tensor q = make(), k = make(), v = make(), w = make();
        auto L = pattern_layout("bigbird", N, H, causal);
        std::vector<std::vector<double>> res[2];
        setenv("SPARROW_BLOCK_ATTN_BWD", bwd, 1);
        for (int token_major = 0; token_major < 2; ++token_major) {
          BlockAttentionArgs a;
          a.layout = L.get();
          a.causal = causal;
          a.token_major_out = token_major == 1;
          Tensor qi = q.detach(), ki = k.detach(), vi = v.detach();
          qi.requires_grad_();
          ki.requires_grad_();
          vi.requires_grad_();
          Tensor o = block_attention(qi, ki, vi, a);
          const Tensor o_tokens = permute(o, {0, 2, 1, 3});  // [B, N, H, D], as the out-projection reads it
          EXPECT_EQ(o_tokens.is_contiguous(), token_major == 1);
          o_tokens.contiguous().backward(permute(w, {0, 2, 1, 3}).contiguous());
          res[token_major] = {o.to_vector(), qi.grad().to_vector(), ki.grad().to_vector(), vi.grad().to_vector()};
        }
        unsetenv("SPARROW_BLOCK_ATTN_BWD");
        for (int t = 0; t < 4; ++t) {
          SCOPED_TRACE(::testing::Message() << "tensor " << t << " (O, dQ, dK, dV)");
          if (t == 1 && std::strcmp(bwd, "sm90") == 0) {
            size_t bad = 0;
            EXPECT_LT(norm_ratio(res[1][t], res[0][t], &bad), 4e-3);
            EXPECT_EQ(bad, 0u);
          } else {
            EXPECT_TRUE(res[0][t] == res[1][t]);
          }
        }
      }
#endif
}
