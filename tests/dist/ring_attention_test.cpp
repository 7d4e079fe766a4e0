// Ring attention under mpirun -np 2 / 4: each rank's shard of O, dQ, dK, dV equals the same
// shard of one-process block attention over the whole sequence (f64, so "equal" means to
// rounding), for dense and block-sparse layouts, causal and not, and ragged lengths; and the
// plan's skipped ring steps are really skipped for a local pattern.
#include <gtest/gtest.h>

#include <cmath>

#include "attention/kernels/block_attention.h"
#include "attention/ring/ring_attention.h"
#include "dist/mpi_world.h"
#include "framework/core/rng.h"
#include "framework/ops/ops.h"

namespace sparrow::attn {
namespace {

using sparrow::testing::max_abs_diff;
using sparrow::testing::world;

struct Case {
  const char* name;
  std::vector<std::string> patterns;  // empty: dense
  int64_t N, block;
  bool causal;
};

void check_ring_equals_one_process(const Case& c) {
  SCOPED_TRACE(c.name);
  const int P = world().size(), r = world().rank();
  const int64_t B = 2, H = 3, D = 8;
  Generator g(7);  // the same global tensors on every rank
  Tensor q = randn({B, H, c.N, D}, g, DType::F64), k = randn({B, H, c.N, D}, g, DType::F64),
         v = randn({B, H, c.N, D}, g, DType::F64), w = randn({B, H, c.N, D}, g, DType::F64);

  std::shared_ptr<const BlockLayout> layout;
  AttentionConfig cfg;
  if (!c.patterns.empty()) {
    cfg.backend = "block_sparse";
    cfg.block_size = c.block;
    cfg.pattern.names = c.patterns;
    cfg.pattern.window = 1;
    cfg.pattern.random_blocks = 1;
    cfg.pattern.per_head = true;
    layout = get_layout(cfg, c.N, H, c.causal);
  }
  // The one-process reference: O and the gradients of Σ O∘W.
  Tensor rq = q.clone().requires_grad_(), rk = k.clone().requires_grad_(), rv = v.clone().requires_grad_();
  BlockAttentionArgs a;
  a.layout = layout.get();
  a.block_size = c.block;
  a.causal = c.causal;
  Tensor ro = block_attention(rq, rk, rv, a);
  sum(mul(ro, w)).backward();

  auto plan = std::make_shared<RingPlan>(make_ring_plan(c.N, P, c.block, c.causal, layout.get()));
  Tensor sq = zigzag_shard(q, *plan, r).requires_grad_(), sk = zigzag_shard(k, *plan, r).requires_grad_(),
         sv = zigzag_shard(v, *plan, r).requires_grad_();
  RingAttentionArgs ra;
  ra.comm = &world();
  ra.plan = plan;
  ra.layout = layout;
  RingStats st;
  Tensor so = ring_attention(sq, sk, sv, ra, &st);
  sum(mul(so, zigzag_shard(w, *plan, r))).backward();

  EXPECT_LT(max_abs_diff(so, zigzag_shard(ro.detach(), *plan, r)), 1e-12) << "O";
  EXPECT_LT(max_abs_diff(sq.grad(), zigzag_shard(rq.grad(), *plan, r)), 1e-12) << "dQ";
  EXPECT_LT(max_abs_diff(sk.grad(), zigzag_shard(rk.grad(), *plan, r)), 1e-12) << "dK";
  EXPECT_LT(max_abs_diff(sv.grad(), zigzag_shard(rv.grad(), *plan, r)), 1e-12) << "dV";
  int needed = 0;
  for (int o = 0; o < P; ++o) needed += o != r && plan->need[r][o];
  EXPECT_EQ(st.hops_computed, needed) << "each needed shard computed on once";
}

TEST(RingAttention, DenseEqualsOneProcess) {
  check_ring_equals_one_process({"dense", {}, 256, 16, false});
  check_ring_equals_one_process({"dense causal", {}, 256, 16, true});
}

TEST(RingAttention, RaggedLengthsEqualOneProcess) {
  // 200 tokens in blocks of 16: the last chunks are short (or empty at 4 ranks).
  check_ring_equals_one_process({"dense ragged", {}, 200, 16, false});
  check_ring_equals_one_process({"dense causal ragged", {}, 200, 16, true});
  check_ring_equals_one_process({"bigbird causal ragged", {"bigbird"}, 203, 16, true});
}

TEST(RingAttention, BlockSparsePatternsEqualOneProcess) {
  for (bool causal : {false, true}) {
    check_ring_equals_one_process({"bigbird", {"bigbird"}, 512, 16, causal});
    check_ring_equals_one_process({"local", {"local"}, 512, 16, causal});
    check_ring_equals_one_process({"local+global", {"local", "global"}, 512, 16, causal});
  }
}

TEST(RingAttention, LocalPatternSkipsTheRingStepsItDoesNotNeed) {
  const int P = world().size();
  AttentionConfig cfg;
  cfg.block_size = 16;
  cfg.pattern.names = {"local"};
  cfg.pattern.window = 1;
  const int64_t N = 1024;
  auto layout = get_layout(cfg, N, 1, true);
  const RingPlan local = make_ring_plan(N, P, 16, true, layout.get());
  const RingPlan dense = make_ring_plan(N, P, 16, true, nullptr);
  EXPECT_EQ(dense.hops_skipped(), 0);
  for (int o = 0; o < P; ++o) {
    EXPECT_EQ(dense.reach_fwd[o] + dense.reach_bwd[o], P - 1) << "dense: every other rank, once";
    EXPECT_LE(std::abs(dense.reach_fwd[o] - dense.reach_bwd[o]), 1) << "dense: half way round each way";
  }
  // Every needed pair lies on exactly one of the shard's two paths.
  for (int r = 0; r < P; ++r)
    for (int o = 0; o < P; ++o) {
      if (r == o) continue;
      if (local.need[r][o]) EXPECT_NE(local.direction(r, o), 0) << r << " needs " << o;
      EXPECT_LE(local.reach_fwd[o] + local.reach_bwd[o], P - 1);
    }
  // A window of one block: with the zigzag split each rank's chunks touch its neighbours' only,
  // so each shard goes one hop each way (at most): neighbours only.
  for (int o = 0; o < P; ++o) {
    EXPECT_LE(local.reach_fwd[o], 1) << o;
    EXPECT_LE(local.reach_bwd[o], 1) << o;
  }
}

TEST(RingPlan, RefusesASequenceTooShortForTheRanks) { EXPECT_THROW(make_ring_plan(16, 4, 16, false, nullptr), Error); }

}  // namespace
}  // namespace sparrow::attn
