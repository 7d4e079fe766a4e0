// The engine's leaf-ready notifications (autograd LeafReadyGuard), which data parallelism uses to
// start gradient exchange during the backward: each leaf is reported once, its gradient is final
// when reported, and a leaf whose last use is late in the forward is reported early in the backward.
#include <gtest/gtest.h>

#include <map>

#include "framework/autograd/node.h"
#include "framework/core/rng.h"
#include "framework/ops/ops.h"

namespace sparrow {
namespace {

TEST(LeafReady, EachLeafOnceWithItsFinalGradientEarlyLeavesFirst) {
  Generator g(5);
  Tensor a = randn({4, 4}, g).requires_grad_(), b = randn({4, 4}, g).requires_grad_(),
         c = randn({4, 4}, g).requires_grad_(), x = randn({4, 4}, g);
  // a is used twice (first and third op), b once in the middle, c last of all.
  Tensor h = tanh(matmul(x, a));
  h = tanh(matmul(h, b));
  h = add(matmul(h, a), c);
  Tensor loss = sum(mul(h, h));

  std::vector<const TensorImpl*> order;
  std::map<const TensorImpl*, std::vector<double>> at_report;
  {
    LeafReadyGuard guard([&](const TensorImpl* leaf) {
      order.push_back(leaf);
      at_report[leaf] = Tensor(leaf->grad).to_vector();
    });
    loss.backward();
  }
  ASSERT_EQ(order.size(), 3u) << "each leaf reported exactly once";
  EXPECT_EQ(order[0], &c.impl()) << "c's only use is the last op: final first";
  EXPECT_EQ(order[1], &b.impl());
  EXPECT_EQ(order[2], &a.impl()) << "a's first use is the first op: final last";
  for (const Tensor* t : {&a, &b, &c}) EXPECT_EQ(at_report[&t->impl()], t->grad().to_vector());

  // No guard: no reports, and a guard's scope ends with it.
  order.clear();
  for (Tensor* t : {&a, &b, &c}) t->zero_grad();
  sum(mul(a, b)).backward();
  EXPECT_TRUE(order.empty());
}

TEST(LeafReady, ALeafReachedOnlyThroughAnUnusedBranchIsStillReported) {
  Generator g(6);
  Tensor a = randn({3}, g).requires_grad_(), b = randn({3}, g).requires_grad_();
  // b only reaches the loss through a product with zero weight — still an edge, still reported.
  Tensor loss = add(sum(a), mul_scalar(sum(b), 0.0));
  int reports = 0;
  {
    LeafReadyGuard guard([&](const TensorImpl*) { ++reports; });
    loss.backward();
  }
  EXPECT_EQ(reports, 2);
}

}  // namespace
}  // namespace sparrow
