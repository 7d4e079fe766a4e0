// Every built-in attention backend under context parallelism (mpirun -np 2 / 4): each rank's
// shard of O, dQ, dK, dV equals the same shard of the backend's one-process forward and backward
// over the whole sequence, causal and not, at a ragged length. Hierarchical also at a block size
// whose summaries pool tokens of several ranks. The reference is the one-process run on the host
// in f64. On the host the ring runs in f64 over MPI ("equal" means to rounding: 1e-12); on the
// GPUs (one per rank, NCCL) it runs in f32, the GPU ring merge's widest part dtype (1e-4).
#include <gtest/gtest.h>

#include <cmath>

#include "attention/attention.h"
#include "attention/ring/context_parallel.h"
#include "dist/mpi_world.h"
#include "framework/core/rng.h"
#include "framework/ops/ops.h"

namespace sparrow::attn {
namespace {

using sparrow::testing::DistDeviceTest;
using sparrow::testing::max_abs_diff;

AttentionConfig config(const std::string& backend, int64_t block) {
  AttentionConfig cfg;
  cfg.backend = backend;
  cfg.block_size = block;
  cfg.pattern.names = {"local", "global"};
  cfg.pattern.window = 1;
  cfg.sparsity = backend == "adaptive" ? 0.5 : 0.0;  // adaptive: a real choice among blocks
  cfg.hierarchical.levels = 2;
  cfg.hierarchical.pool = 2;
  cfg.hierarchical.fine_window = 1;
  cfg.autocfg.dense_max_seq = 64;  // auto: the sparse path at these lengths
  cfg.autocfg.budget_tokens = 64;
  return cfg;
}

class BackendsRing : public DistDeviceTest {
 protected:
  void check_backend_ring_equals_one_process(const AttentionConfig& cfg, int64_t N, bool causal);
};

void BackendsRing::check_backend_ring_equals_one_process(const AttentionConfig& cfg, int64_t N, bool causal) {
  SCOPED_TRACE(cfg.backend + " block " + std::to_string(cfg.block_size) + " N " + std::to_string(N) +
               (causal ? " causal" : "") + " on " + device().str());
  dist::Communicator& world = comm();
  const int r = world.rank();
  const int64_t B = 2, H = 2, D = 8;
  const DType dt = device().is_cpu() ? DType::F64 : DType::F32;
  const double tol = device().is_cpu() ? 1e-12 : 1e-4;
  Generator g(11);  // the same global tensors on every rank, rounded to the ring's dtype
  auto make = [&] { return randn({B, H, N, D}, g, DType::F64).to(dt).to(DType::F64); };
  Tensor q = make(), k = make(), v = make(), w = make();
  // This rank's shard of a global tensor, on its device in the ring's dtype.
  auto shard_of = [&](const Tensor& t, const RingPlan& plan) {
    return zigzag_shard(t, plan, r).to(dt).to(device()).detach();
  };

  // One process: the gradients of Σ O∘W.
  Tensor wq = q.clone().requires_grad_(), wk = k.clone().requires_grad_(), wv = v.clone().requires_grad_();
  AttentionCall whole;
  whole.q = wq;
  whole.k = wk;
  whole.v = wv;
  whole.causal = causal;
  Tensor wo = make_attention(cfg)->forward(whole);
  sum(mul(wo, w)).backward();

  ContextParallel cp;
  cp.comm = &world;
  cp.seq_len = N;
  cp.block_size = cfg.block_size;
  const RingPlan plan = cp.dense_plan(causal);
  Tensor sq = shard_of(q, plan).requires_grad_(), sk = shard_of(k, plan).requires_grad_(),
         sv = shard_of(v, plan).requires_grad_();
  AttentionCall shard;
  shard.q = sq;
  shard.k = sk;
  shard.v = sv;
  shard.causal = causal;
  shard.context = &cp;
  auto backend = make_attention(cfg);
  ASSERT_TRUE(backend->supports_context_parallel());
  Tensor so = backend->forward(shard);
  ASSERT_EQ(so.device(), device());
  sum(mul(so, shard_of(w, plan))).backward();

  EXPECT_LT(max_abs_diff(so, zigzag_shard(wo.detach(), plan, r)), tol) << "O";
  EXPECT_LT(max_abs_diff(sq.grad(), zigzag_shard(wq.grad(), plan, r)), tol) << "dQ";
  EXPECT_LT(max_abs_diff(sk.grad(), zigzag_shard(wk.grad(), plan, r)), tol) << "dK";
  EXPECT_LT(max_abs_diff(sv.grad(), zigzag_shard(wv.grad(), plan, r)), tol) << "dV";
  EXPECT_LE(backend->stats().ring_hops_computed, world.size() - 1);
}

TEST_P(BackendsRing, EveryBuiltInEqualsOneProcess) {
  for (const char* name : {"dense", "block_sparse", "hierarchical", "adaptive", "auto"})
    for (bool causal : {false, true}) check_backend_ring_equals_one_process(config(name, 16), 200, causal);
}

TEST_P(BackendsRing, HierarchicalSummariesPoolingSeveralRanksEqualOneProcess) {
  // Blocks of 4 at pool 4: level-2 summaries pool 16 tokens, and the zigzag chunks (28 tokens at
  // 4 ranks, 52 at 2) cut through some of those groups, so their means add partial sums of two ranks.
  AttentionConfig cfg = config("hierarchical", 4);
  cfg.hierarchical.pool = 4;
  for (bool causal : {false, true}) check_backend_ring_equals_one_process(cfg, 203, causal);
}

SPARROW_DEVICE_TESTS(BackendsRing);

}  // namespace
}  // namespace sparrow::attn
