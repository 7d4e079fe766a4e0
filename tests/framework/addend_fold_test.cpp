// The backward engine's addend folding (Node::backward_adding): a node that folds addends gets, per
// non-leaf input, the gradient that already reached that input from its other consumers, and what
// it returns replaces that gradient instead of being added to it. Checked with a small op that
// records what it received (gradients by finite differences, which addends arrived, that the
// input's node sees the buffer the op made), and with layer_norm on a residual stream (x + LN(x)),
// the case it exists for.
#include <gtest/gtest.h>

#include "common/gradcheck.h"
#include "framework/autograd/node.h"
#include "framework/ops/ops.h"

using namespace sparrow;
using sparrow::testing::gradcheck;
using sparrow::testing::leaf;
using sparrow::testing::observe;

namespace {

// What one backward of scaled_sum saw.
struct Seen {
  std::vector<bool> addend;    // per input: an addend arrived
  const void* made = nullptr;  // the buffer it returned for input 0
};

// y = a·x0 + b·x1, folding addends: dx0 = a·g (+ addend), dx1 = b·g (+ addend). With a == 0 it
// hands an addend back as it is (no gradient of its own).
Tensor scaled_sum(const Tensor& x0, const Tensor& x1, double a, double b, Seen* seen) {
  Tensor y = add(mul_scalar(x0.detach(), a), mul_scalar(x1.detach(), b));
  return record(y, "scaled_sum", {x0, x1}, [=](const Tensor& g, const std::vector<Tensor>& addends) {
    seen->addend.assign(2, false);
    std::vector<Tensor> grads(2);
    const double scale[2] = {a, b};
    for (size_t k = 0; k < 2; ++k) {
      const bool has = k < addends.size() && addends[k].defined();
      seen->addend[k] = has;
      if (scale[k] == 0) {
        grads[k] = has ? addends[k] : Tensor();
        continue;
      }
      grads[k] = mul_scalar(g, scale[k]);
      if (has) add_(grads[k], addends[k]);
    }
    seen->made = grads[0].defined() ? grads[0].data_ptr() : nullptr;
    return grads;
  });
}

}  // namespace

TEST(AddendFold, ASkipConnectionsGradientIsFoldedIn) {
  Generator gen(1);
  Tensor a = leaf({3, 5}, gen), other = leaf({3, 5}, gen);
  Seen seen;
  // h = tanh(a) feeds the skip add and scaled_sum: the skip's gradient is waiting when scaled_sum runs.
  EXPECT_TRUE(gradcheck(
      [&](const std::vector<Tensor>& x) {
        Tensor h = tanh(x[0]);
        return add(h, scaled_sum(h, x[1], 3.0, -2.0, &seen));
      },
      {a, other}));
  EXPECT_TRUE(seen.addend[0]) << "the skip connection's gradient did not reach the folding node";
  EXPECT_FALSE(seen.addend[1]) << "a leaf input has no waiting gradient to fold";

  // The input's node receives the very buffer the folding node made: no add after it.
  const void* arrived = nullptr;
  Tensor x = leaf({3, 5}, gen);
  Tensor h = observe(mul_scalar(x, 2.0), &arrived);
  sum(add(h, scaled_sum(h, other, 3.0, 1.0, &seen))).backward();
  ASSERT_NE(seen.made, nullptr);
  EXPECT_EQ(arrived, seen.made) << "the engine added the folded gradient again instead of taking it";
}

TEST(AddendFold, OneAddendPerInputNodeAndLaterContributionsStillAdd) {
  Generator gen(2);
  Tensor a = leaf({4, 2}, gen);
  Seen seen;
  // The same tensor on both inputs: its waiting gradient is given once (to the first edge).
  EXPECT_TRUE(gradcheck(
      [&](const std::vector<Tensor>& x) {
        Tensor h = tanh(x[0]);
        return add(h, scaled_sum(h, h, 1.5, 0.5, &seen));
      },
      {a}));
  EXPECT_TRUE(seen.addend[0]);
  EXPECT_FALSE(seen.addend[1]);
  // A consumer that runs after the folding node (h also feeds a later use of y's input chain) still
  // adds its gradient: h → scaled_sum → ... and h → exp, where exp's branch is processed first or last.
  EXPECT_TRUE(gradcheck(
      [&](const std::vector<Tensor>& x) {
        Tensor h = tanh(x[0]);
        Tensor y = scaled_sum(h, h, 2.0, 0.0, &seen);
        return add(add(h, exp(h)), mul(y, h));
      },
      {a}));
}

TEST(AddendFold, AnAddendHandedBackAsItIs) {
  Generator gen(3);
  Tensor a = leaf({2, 3}, gen), b = leaf({2, 3}, gen);
  Seen seen;
  // a = 0: scaled_sum gives x0 no gradient of its own and returns the addend itself.
  EXPECT_TRUE(gradcheck(
      [&](const std::vector<Tensor>& x) {
        Tensor h = exp(x[0]);
        // scaled_sum first: the engine reaches the mul_scalar branch (h's other consumer) before it.
        return add(scaled_sum(h, x[1], 0.0, 4.0, &seen), mul_scalar(h, 2.0));
      },
      {a, b}));
  EXPECT_TRUE(seen.addend[0]);
}

TEST(AddendFold, LayerNormOnAResidualStream) {
  Generator gen(4);
  Tensor x = leaf({6, 16}, gen), w = leaf({16}, gen), b = leaf({16}, gen);
  // Two pre-norm residual steps, x + LN(x) then + RMSNorm: the norms' dx carry the skip's gradient.
  EXPECT_TRUE(gradcheck(
      [](const std::vector<Tensor>& in) {
        Tensor h = mul_scalar(in[0], 1.5);
        Tensor h2 = add(h, layer_norm(h, in[1], in[2], 1e-5));
        return add(h2, mul(rms_norm(h2, in[1], 1e-6), h2));
      },
      {x, w, b}));
  // The skip's gradient arriving as a transposed view (not laid out as x): added after the kernel.
  EXPECT_TRUE(gradcheck(
      [](const std::vector<Tensor>& in) {
        Tensor h = tanh(in[0]);
        return add(transpose(layer_norm(h, in[1], in[2], 1e-5), 0, 1), transpose(h, 0, 1));
      },
      {x, w, b}));
}
