// The registry and the dense / block_sparse backends: each equals the explicit dense reference
// with the equivalent element mask (forward and the three gradients), and reports its stats.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "attention/attention.h"
#include "attention/backends/block_sparse.h"
#include "attention/layout/block_layout.h"
#include "attention/layout/layout_cache.h"
#include "attention_reference.h"
#include "common/gradcheck.h"

using namespace sparrow;
using namespace sparrow::attn;
namespace st = sparrow::testing;

namespace {

struct Errors {
  double o, dq, dk, dv;
};

// Runs `backend` on random [B, H, N, D] inputs and compares with the reference under `vis`.
Errors run_and_compare(Attention& backend, int64_t B, int64_t H, int64_t N, int64_t D, bool causal, DType dt,
                       const std::function<st::Visible(void)>& make_vis, uint64_t seed = 5) {
  Generator g(seed);
  Tensor q = randn({B, H, N, D}, g, dt), k = randn({B, H, N, D}, g, dt), v = randn({B, H, N, D}, g, dt),
         w = randn({B, H, N, D}, g, dt);
  q.requires_grad_();
  k.requires_grad_();
  v.requires_grad_();
  AttentionCall call{q, k, v, causal, 0};
  Tensor o = backend.forward(call);
  o.backward(w);
  auto ref = st::reference_attention(q, k, v, w, 1.0 / std::sqrt(double(D)), make_vis());
  return {st::rel_error(o.to_vector(), ref.o), st::rel_error(q.grad().to_vector(), ref.dq),
          st::rel_error(k.grad().to_vector(), ref.dk), st::rel_error(v.grad().to_vector(), ref.dv)};
}

void expect_close(const Errors& e, double tol) {
  EXPECT_LT(e.o, tol) << "O";
  EXPECT_LT(e.dq, tol) << "dQ";
  EXPECT_LT(e.dk, tol) << "dK";
  EXPECT_LT(e.dv, tol) << "dV";
}

st::Visible causal_rule(bool causal) {
  return [causal](int64_t, int64_t i, int64_t j) { return !causal || j <= i; };
}

}  // namespace

TEST(Registry, KnowsDenseAndBlockSparse) {
  auto names = attention_backend_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "dense"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "block_sparse"), names.end());
  EXPECT_EQ(names.size(), attention_registry().size());
  for (const std::string& n : {std::string("dense"), std::string("block_sparse")}) {
    AttentionConfig cfg;
    cfg.backend = n;
    cfg.sparsity = 0.5;
    EXPECT_EQ(make_attention(cfg)->name(), n);
  }
}

TEST(Registry, UnknownNameListsKnownOnes) {
  AttentionConfig cfg;
  cfg.backend = "flashy";
  try {
    make_attention(cfg);
    FAIL() << "no error for an unknown backend";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("flashy"), std::string::npos) << msg;
    EXPECT_NE(msg.find("dense"), std::string::npos) << msg;
    EXPECT_NE(msg.find("block_sparse"), std::string::npos) << msg;
  }
}

TEST(DenseBackend, MatchesReference) {
  for (bool causal : {false, true})
    for (DType dt : {DType::F64, DType::F32}) {
      AttentionConfig cfg;
      cfg.backend = "dense";
      cfg.block_size = 32;
      auto a = make_attention(cfg);
      SCOPED_TRACE(std::string(causal ? "causal " : "") + dtype_name(dt));
      expect_close(run_and_compare(*a, 2, 2, 100, 32, causal, dt, [&] { return causal_rule(causal); }),
                   dt == DType::F64 ? 1e-10 : 1e-5);
    }
}

TEST(DenseBackend, StatsCountTheTilesExactly) {
  AttentionConfig cfg;
  cfg.block_size = 32;
  auto a = make_attention(cfg);
  Generator g(1);
  Tensor q = randn({2, 3, 100, 16}, g);
  a->forward({q, q, q, false, 0});
  AttentionStats s = a->stats();
  EXPECT_EQ(s.backend, "dense");
  EXPECT_EQ(s.seq_len, 100);
  EXPECT_EQ(s.active_blocks, 16 * 3);
  EXPECT_EQ(s.dense_blocks, 16 * 3);
  EXPECT_DOUBLE_EQ(s.density, 1.0);
  EXPECT_DOUBLE_EQ(s.flops, 4.0 * 100 * 100 * 16 * 2 * 3);
  a->forward({q, q, q, true, 0});
  s = a->stats();
  EXPECT_EQ(s.dense_blocks, 10 * 3);
  // Causal tiles: query block i (rows r_i) against keys 0 .. end of block i.
  const double pairs = 32.0 * 32 + 32.0 * 64 + 32.0 * 96 + 4.0 * 100;
  EXPECT_DOUBLE_EQ(s.flops, 4.0 * pairs * 16 * 2 * 3);
}

TEST(BlockSparseBackend, MatchesReferenceWithItsLayout) {
  for (bool causal : {false, true})
    for (bool per_head : {false, true})
      for (DType dt : {DType::F64, DType::F32}) {
        AttentionConfig cfg;
        cfg.backend = "block_sparse";
        cfg.block_size = 16;
        cfg.sparsity = 0.6;
        cfg.pattern.names = {"local", "global", "random"};
        cfg.pattern.window = 1;
        cfg.pattern.per_head = per_head;
        cfg.pattern.seed = 3;
        BlockSparseAttention a(cfg);
        SCOPED_TRACE(std::string(causal ? "causal " : "") + (per_head ? "per-head " : "") + dtype_name(dt));
        // N = 100 at block 16: 7 blocks, the last ragged (4 rows).
        auto vis = [&]() -> st::Visible {
          auto L = a.last_layout();
          return [L, causal](int64_t h, int64_t i, int64_t j) {
            return st::csr_has(L->head(h), i / 16, j / 16) && (!causal || j <= i);
          };
        };
        expect_close(run_and_compare(a, 1, 3, 100, 32, causal, dt, vis), dt == DType::F64 ? 1e-10 : 1e-5);
        auto L = a.last_layout();
        ASSERT_TRUE(L);
        EXPECT_EQ(L->heads.size(), per_head ? 3u : 1u);
        const AttentionStats s = a.stats();
        EXPECT_EQ(s.backend, "block_sparse");
        EXPECT_LT(s.active_blocks, s.dense_blocks);
        EXPECT_NEAR(s.density, double(s.active_blocks) / s.dense_blocks, 1e-12);
        EXPECT_DOUBLE_EQ(s.target_sparsity, 0.6);
      }
}

TEST(BlockSparseBackend, HeadDimsAndBatch) {
  for (int64_t D : {32, 64, 128}) {
    AttentionConfig cfg;
    cfg.backend = "block_sparse";
    cfg.block_size = 8;
    cfg.sparsity = 0.5;
    auto a = std::make_unique<BlockSparseAttention>(cfg);
    SCOPED_TRACE("D=" + std::to_string(D));
    auto vis = [&]() -> st::Visible {
      auto L = a->last_layout();
      return [L](int64_t h, int64_t i, int64_t j) { return st::csr_has(L->head(h), i / 8, j / 8) && j <= i; };
    };
    expect_close(run_and_compare(*a, 2, 2, 45, D, true, DType::F64, vis), 1e-10);
  }
}

TEST(SparsitySchedule, Shapes) {
  SparsitySchedule s{0.5, 0.9, 100, 300, "linear"};
  EXPECT_TRUE(s.active());
  EXPECT_DOUBLE_EQ(s.at(0), 0.5);
  EXPECT_DOUBLE_EQ(s.at(200), 0.7);
  EXPECT_DOUBLE_EQ(s.at(1000), 0.9);
  s.shape = "cosine";
  EXPECT_DOUBLE_EQ(s.at(200), 0.7);  // cosine passes the midpoint at the midpoint
  EXPECT_NEAR(s.at(150), 0.5 + 0.4 * (1 - std::cos(M_PI * 0.25)) / 2, 1e-15);
  s.shape = "step";
  EXPECT_DOUBLE_EQ(s.at(99), 0.5);
  EXPECT_DOUBLE_EQ(s.at(100), 0.9);
  EXPECT_FALSE(SparsitySchedule{}.active());
  AttentionConfig cfg;
  cfg.sparsity = 0.3;
  EXPECT_DOUBLE_EQ(cfg.sparsity_at(7), 0.3);  // no schedule: the fixed target at every step
  cfg.schedule = s;
  EXPECT_DOUBLE_EQ(cfg.sparsity_at(99), 0.5);
  EXPECT_DOUBLE_EQ(cfg.sparsity_at(100), 0.9);
}

// The backend owns its schedule: the target a forward works to is the schedule's value at
// call.step (stats and the layout both say so), and each distinct target builds its layout once.
TEST(BlockSparseBackend, ForwardFollowsTheScheduleByStep) {
  AttentionConfig cfg;
  cfg.backend = "block_sparse";
  cfg.block_size = 16;
  cfg.sparsity = 0.1;  // replaced by the schedule
  cfg.pattern.seed = 3;
  cfg.schedule = {0.2, 0.9, 2, 8, "cosine"};
  auto a = make_attention(cfg);
  auto* bs = dynamic_cast<BlockSparseAttention*>(a.get());
  ASSERT_NE(bs, nullptr);
  Generator g(2);
  Tensor q = randn({1, 2, 512, 16}, g);
  layout_cache_clear();
  const LayoutCacheStats before = layout_cache_stats();
  std::vector<double> seen;
  for (int64_t step : {0, 1, 2, 3, 5, 7, 8, 9, 20, 3, 0}) {
    SCOPED_TRACE("step " + std::to_string(step));
    a->forward({q, q, q, true, step});
    const double want = cfg.schedule.at(step);
    EXPECT_EQ(a->stats().target_sparsity, want);  // bit for bit: the schedule's own value
    AttentionConfig at = cfg;
    at.schedule = {};
    at.sparsity = want;
    EXPECT_EQ(bs->last_layout(), get_layout(at, 512, 2, true)) << "not the layout at the step's target";
    if (std::find(seen.begin(), seen.end(), want) == seen.end()) seen.push_back(want);
  }
  // One build per distinct target (0.2 for steps 0–2, 0.9 from 8 on, one each between).
  EXPECT_EQ(layout_cache_stats().misses - before.misses, static_cast<int64_t>(seen.size()));
  // The realised density follows the target down.
  a->forward({q, q, q, true, 0});
  const AttentionStats s20 = a->stats();
  a->forward({q, q, q, true, 9});
  const AttentionStats s90 = a->stats();
  EXPECT_LT(s90.active_blocks, s20.active_blocks);
  EXPECT_LT(s90.flops, s20.flops);
  EXPECT_LT(s90.density, 0.2);
  // Targets outside [0, 1) are refused when the backend is built, schedule ends included.
  AttentionConfig bad = cfg;
  bad.schedule.to = 1.0;
  EXPECT_THROW(make_attention(bad), Error);
  bad = cfg;
  bad.schedule.from = -0.1;
  EXPECT_THROW(make_attention(bad), Error);
  bad = cfg;
  bad.schedule.end = 2;
  EXPECT_THROW(make_attention(bad), Error);
  bad = cfg;
  bad.sparsity = 1.0;
  EXPECT_THROW(make_attention(bad), Error);
}

TEST(BlockSparseBackend, FlopsCountRaggedBlocks) {
  // Sparsity 0 with a wide window is the full causal triangle: the same FLOPs as dense.
  AttentionConfig cfg;
  cfg.backend = "block_sparse";
  cfg.block_size = 32;
  cfg.pattern.names = {"local"};
  cfg.pattern.window = 10;
  auto sparse = make_attention(cfg);
  cfg.backend = "dense";
  auto dense = make_attention(cfg);
  Generator g(3);
  Tensor q = randn({1, 2, 100, 8}, g);
  sparse->forward({q, q, q, true, 0});
  dense->forward({q, q, q, true, 0});
  EXPECT_DOUBLE_EQ(sparse->stats().flops, dense->stats().flops);
  EXPECT_DOUBLE_EQ(sparse->stats().density, 1.0);
}

TEST(BlockSparseBackend, GradientsByFiniteDifferences) {
  AttentionConfig cfg;
  cfg.backend = "block_sparse";
  cfg.block_size = 2;
  cfg.sparsity = 0.4;
  cfg.pattern.names = {"local", "random"};
  cfg.pattern.window = 1;
  auto a = make_attention(cfg);
  Generator g(4);
  std::vector<Tensor> in{st::leaf({1, 2, 7, 3}, g), st::leaf({1, 2, 7, 3}, g), st::leaf({1, 2, 7, 3}, g)};
  EXPECT_TRUE(st::gradcheck([&](const std::vector<Tensor>& x) { return a->forward({x[0], x[1], x[2], true, 0}); }, in));
}

TEST(BlockSparseBackend, Bf16RunsAndMatchesF32) {
  AttentionConfig cfg;
  cfg.backend = "block_sparse";
  cfg.block_size = 16;
  cfg.sparsity = 0.5;
  auto a = make_attention(cfg);
  Generator g(6);
  Tensor qf = randn({1, 2, 64, 32}, g);
  Tensor qb = empty(qf.shape(), DType::BF16);
  copy_(qb, qf);
  copy_(qf, qb);  // the same (bf16-rounded) values in both runs
  Tensor of = a->forward({qf, qf, qf, true, 0});
  Tensor ob = a->forward({qb, qb, qb, true, 0});
  EXPECT_EQ(ob.dtype(), DType::BF16);
  EXPECT_LT(st::rel_error(ob.to_vector(), of.to_vector()), 1e-2);
}

TEST(Backends, RejectBadConfigAndInputs) {
  AttentionConfig cfg;
  cfg.block_size = 0;
  EXPECT_THROW(make_attention(cfg), Error);
  cfg.backend = "block_sparse";
  EXPECT_THROW(make_attention(cfg), Error);
  cfg.block_size = 16;
  cfg.sparsity = 1.5;
  EXPECT_THROW(make_attention(cfg), Error);
  cfg.sparsity = 0.5;
  auto a = make_attention(cfg);
  Generator g(1);
  Tensor q3 = randn({2, 16, 8}, g);
  EXPECT_THROW(a->forward({q3, q3, q3, true, 0}), Error);
}
