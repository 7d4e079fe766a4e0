// ZeRO-1 under mpirun: each rank updates its shard of the weights; after the gather every rank
// holds the weights one unsharded AdamW step gives, and the state assembled on rank 0 is the
// unsharded optimizer's, bit for bit.
#include <gtest/gtest.h>

#include "dist/mpi_world.h"
#include "framework/core/rng.h"
#include "framework/dist/optimizer_shards.h"
#include "framework/nn/linear.h"
#include "framework/nn/parameter_buffer.h"
#include "framework/ops/ops.h"

namespace sparrow::dist {
namespace {

using sparrow::testing::world;

TEST(OptimizerShards, GatheredShardsEqualTheUnshardedUpdateOnEveryRank) {
  Generator i1(5), i2(5);
  nn::Linear a_net(40, 30, true, i1), b_net(40, 30, true, i2);
  nn::ParameterBuffer a = nn::ParameterBuffer::pack(a_net), b = nn::ParameterBuffer::pack(b_net);
  const optim::AdamWOptions o{.lr = 0.01, .weight_decay = 0.05};
  optim::AdamW whole(a, o);
  optim::AdamW mine(b, o, optimizer_shard(b.numel(), world().rank(), world().size()));
  ASSERT_TRUE(world().size() == 1 || mine.sharded());
  Generator g(11);  // the same gradient on every rank, as after the gradient all-reduce
  for (int step = 0; step < 3; ++step) {
    const Tensor grad = randn({a.numel()}, g);
    Tensor ga = a.grad(), gb = b.grad();
    copy_(ga, grad);
    copy_(gb, grad);
    whole.step();
    mine.step();
    gather_parameter_shards(b, Tensor(), world());
    ASSERT_EQ(b.data().to_vector(), a.data().to_vector()) << "step " << step + 1;
  }
  for (int root : {0, world().size() - 1}) {
    const optim::AdamWState s = gather_optimizer_state(mine, world(), root);
    EXPECT_EQ(s.step, 3);
    if (world().rank() == root) {
      EXPECT_EQ(s.exp_avg.to_vector(), whole.state().exp_avg.to_vector());
      EXPECT_EQ(s.exp_avg_sq.to_vector(), whole.state().exp_avg_sq.to_vector());
    } else {
      EXPECT_FALSE(s.exp_avg.defined());
    }
  }
}

}  // namespace
}  // namespace sparrow::dist
