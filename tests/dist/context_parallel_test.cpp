// Context parallelism through the whole model, under mpirun: a transformer whose ranks each hold
// a zigzag shard of every sequence gives the one-process loss and, after the gradient
// all-reduce, the one-process gradients (f32, to reduction order), with dense, block-sparse and
// adaptive and hierarchical layers, and refuses a backend that cannot run on a shard.
#include <gtest/gtest.h>

#include <cmath>

#include "attention/ring/context_parallel.h"
#include "dist/mpi_world.h"
#include "framework/nn/parameter_buffer.h"
#include "framework/ops/ops.h"
#include "models/transformer.h"

namespace sparrow {
namespace {

using sparrow::testing::world;

models::TransformerOptions tiny_model(const std::vector<std::string>& backends) {
  models::TransformerOptions o;
  o.n_layers = static_cast<int64_t>(backends.size());
  o.d_model = 32;
  o.n_heads = 2;
  for (const std::string& b : backends) {
    attn::AttentionConfig a;
    a.backend = b;
    a.block_size = 16;
    a.pattern.names = {"local", "global"};
    a.pattern.window = 1;
    if (b == "adaptive") a.sparsity = 0.5;  // a real choice among blocks in every later row
    o.attention.push_back(a);
  }
  return o;
}

// ids [B, T] → this rank's zigzag shard [B, n].
Tensor shard_tokens(const Tensor& ids, const attn::RingPlan& plan, int rank) {
  const int64_t B = ids.size(0);
  Tensor s = attn::zigzag_shard(ids.reshape({B, 1, ids.size(1)}), plan, rank);
  return s.reshape({B, s.size(2)});
}

void check_context_parallel_equals_one_process(const std::vector<std::string>& backends, int64_t T) {
  const int r = world().rank();
  const int64_t B = 2;
  Generator data(3);
  std::vector<int32_t> tok(static_cast<size_t>(B * (T + 1)));
  for (auto& t : tok) t = static_cast<int32_t>(data.below(256));
  std::vector<int32_t> in, tg;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      in.push_back(tok[static_cast<size_t>(b * (T + 1) + t)]);
      tg.push_back(tok[static_cast<size_t>(b * (T + 1) + t + 1)]);
    }
  const Tensor ids = from_ints(in, {B, T}), targets = from_ints(tg, {B, T});

  Generator init_a(1), init_b(1);
  models::TransformerLM whole(tiny_model(backends), init_a);
  nn::ParameterBuffer whole_params = nn::ParameterBuffer::pack(whole);
  const Tensor whole_loss = whole.loss(ids, targets, 0);
  whole_loss.backward();

  models::TransformerLM sharded(tiny_model(backends), init_b);
  nn::ParameterBuffer params = nn::ParameterBuffer::pack(sharded);
  attn::ContextParallel cp;
  cp.comm = &world();
  cp.seq_len = T;
  cp.block_size = 16;
  sharded.set_context_parallel(&cp);
  const attn::RingPlan plan = cp.dense_plan(true);
  const Tensor my_ids = shard_tokens(ids, plan, r), my_targets = shard_tokens(targets, plan, r);
  // The mean over the whole sequence = Σ over ranks of (local tokens / all tokens) · local mean.
  Tensor loss =
      mul_scalar(sharded.loss(my_ids, my_targets, 0), static_cast<double>(my_ids.size(1)) / static_cast<double>(T));
  loss.backward();
  Tensor g = params.grad();
  world().all_reduce(g)->wait();
  Tensor total = loss.detach().clone();
  world().all_reduce(total)->wait();

  EXPECT_NEAR(total.item(), whole_loss.item(), 1e-5);
  const std::vector<double> a = g.to_vector(), b = whole_params.grad().to_vector();
  double err = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::abs(a[i] - b[i]));
    norm = std::max(norm, std::abs(b[i]));
  }
  EXPECT_LT(err, 1e-5 * std::max(1.0, norm)) << "largest gradient difference " << err << " of " << norm;
  for (const auto& s : sharded.attention_stats()) EXPECT_LE(s.ring_hops_computed, world().size() - 1);
}

TEST(ContextParallel, DenseModelEqualsOneProcess) {
  check_context_parallel_equals_one_process({"dense", "dense"}, 256);
}

TEST(ContextParallel, MixedDenseAndBlockSparseRaggedEqualsOneProcess) {
  check_context_parallel_equals_one_process({"block_sparse", "dense"}, 200);
}

TEST(ContextParallel, AdaptiveRaggedEqualsOneProcess) {
  // Its selection from the gathered block means is the one-process selection, block for block.
  check_context_parallel_equals_one_process({"adaptive", "dense"}, 200);
}

TEST(ContextParallel, HierarchicalRaggedEqualsOneProcess) {
  // Fine keys round the ring, summaries from every rank's partial sums (hierarchical_context_parallel.cpp).
  check_context_parallel_equals_one_process({"hierarchical", "dense"}, 200);
}

// A backend registered from outside that knows nothing of shards: it would take a rank's shard
// for the whole sequence, so the model refuses it under context parallelism.
class ShardBlindAttention : public attn::Attention {
 public:
  Tensor forward(const attn::AttentionCall& call) override { return call.v; }
  attn::AttentionStats stats() const override { return {}; }
  std::string name() const override { return "shard_blind"; }
};

TEST(ContextParallel, ABackendThatDoesNotRunOnAShardIsRefused) {
  static const bool registered = [] {
    attn::register_attention("shard_blind",
                             [](const attn::AttentionConfig&) { return std::make_unique<ShardBlindAttention>(); });
    return true;
  }();
  ASSERT_TRUE(registered);
  Generator init(1);
  models::TransformerLM m(tiny_model({"dense", "shard_blind"}), init);
  attn::ContextParallel cp;
  cp.comm = &world();
  cp.seq_len = 128;
  cp.block_size = 16;
  try {
    m.set_context_parallel(&cp);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'shard_blind' does not run under context parallelism"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace sparrow
