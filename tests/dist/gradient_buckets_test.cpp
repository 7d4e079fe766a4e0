// Data-parallel gradient buckets under mpirun: exchanged while the backward runs, the flat
// gradient buffer ends equal to one all-reduce of it, with small buckets started early.
#include <gtest/gtest.h>

#include "dist/mpi_world.h"
#include "framework/autograd/checkpoint.h"
#include "framework/core/rng.h"
#include "framework/dist/gradient_buckets.h"
#include "framework/nn/linear.h"
#include "framework/nn/module.h"
#include "framework/nn/parameter_buffer.h"
#include "framework/ops/ops.h"

namespace sparrow::dist {
namespace {

using sparrow::testing::world;

struct ThreeLayers : nn::Module {
  std::shared_ptr<nn::Linear> l1, l2, l3;
  explicit ThreeLayers(Generator& g) {
    l1 = register_module("l1", std::make_shared<nn::Linear>(16, 32, true, g));
    l2 = register_module("l2", std::make_shared<nn::Linear>(32, 32, true, g));
    l3 = register_module("l3", std::make_shared<nn::Linear>(32, 4, true, g));
  }
  Tensor loss(const Tensor& x) const {
    return sum(mul(l3->forward(tanh(l2->forward(tanh(l1->forward(x))))), x.slice(1, 0, 4)));
  }
  // The same function with l1 and l2 each recomputed in the backward (activation checkpointing):
  // their parameters get their gradients inside nested backwards.
  Tensor loss_recomputed(const Tensor& x) const {
    Tensor h = checkpoint([&](const Tensor& in) { return tanh(l1->forward(in)); }, x);
    h = checkpoint([&](const Tensor& in) { return tanh(l2->forward(in)); }, h);
    return sum(mul(l3->forward(h), x.slice(1, 0, 4)));
  }
};

TEST(GradientBuckets, OverlappedExchangeEqualsOneAllReduce) {
  Generator init(1);
  ThreeLayers a(init);
  Generator init2(1);
  ThreeLayers b(init2);
  nn::ParameterBuffer pa = nn::ParameterBuffer::pack(a), pb = nn::ParameterBuffer::pack(b);
  Generator data(100 + static_cast<uint64_t>(world().rank()));  // each rank its own batch
  const Tensor x = randn({8, 16}, data);

  // Reference: backward, then one all-reduce of the whole buffer.
  a.loss(x).backward();
  Tensor ga = pa.grad();
  world().all_reduce(ga)->wait();

  GradientBuckets buckets(pb, world(), 1024);  // 256 floats a bucket: several buckets
  ASSERT_GE(buckets.buckets(), 3u);
  {
    auto guard = buckets.arm();
    b.loss(x).backward();
  }
  EXPECT_GT(buckets.started_early(), 0u) << "some buckets should start before the backward ends; buckets "
                                         << buckets.buckets();
  buckets.finish();
  EXPECT_EQ(pb.grad().to_vector(), pa.grad().to_vector());
}

TEST(GradientBuckets, OverlapsUnderRecomputeToo) {
  Generator init(1), init2(1);
  ThreeLayers a(init), b(init2);
  nn::ParameterBuffer pa = nn::ParameterBuffer::pack(a), pb = nn::ParameterBuffer::pack(b);
  Generator data(200 + static_cast<uint64_t>(world().rank()));
  const Tensor x = randn({8, 16}, data);
  a.loss(x).backward();
  Tensor ga = pa.grad();
  world().all_reduce(ga)->wait();

  GradientBuckets buckets(pb, world(), 1024);
  {
    auto guard = buckets.arm();
    b.loss_recomputed(x).backward();
  }
  // l1's and l2's buckets are reported from inside their segments' backwards, before the end.
  EXPECT_GT(buckets.started_early(), 1u) << "buckets " << buckets.buckets();
  buckets.finish();
  EXPECT_EQ(pb.grad().to_vector(), pa.grad().to_vector());
}

TEST(GradientBuckets, AParameterSharedAcrossRecomputedSegmentsIsAnErrorNotAPartialSum) {
  Generator init(1);
  ThreeLayers m(init);
  nn::ParameterBuffer p = nn::ParameterBuffer::pack(m);
  GradientBuckets buckets(p, world(), 1024);
  Generator data(7);
  const Tensor x = randn({8, 32}, data);
  {
    auto guard = buckets.arm();
    // l2 used by two recomputed segments: the later segment's backward would add to a gradient
    // already reported (and sent).
    Tensor h = checkpoint([&](const Tensor& in) { return tanh(m.l2->forward(in)); }, x);
    h = checkpoint([&](const Tensor& in) { return tanh(m.l2->forward(in)); }, h);
    EXPECT_THROW(sum(h).backward(), Error);
  }
  buckets.finish();  // every rank threw at the same place: the exchange still completes
}

}  // namespace
}  // namespace sparrow::dist
