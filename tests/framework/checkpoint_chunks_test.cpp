// checkpoint_chunks: a token-wise segment checkpointed a chunk at a time gives the output and the
// gradients (input's and parameters') of running it whole, for a ragged last chunk, an output
// whose token dim differs from the input's, and dropout inside (each chunk's replay redraws its
// first run's mask, and the generator ends where the first pass left it); and a segment that hands
// back its input (checkpoint too).
#include <gtest/gtest.h>

#include "common/gradcheck.h"
#include "framework/autograd/checkpoint.h"
#include "framework/autograd/node.h"
#include "framework/nn/linear.h"
#include "framework/ops/ops.h"

using namespace sparrow;
using sparrow::testing::rel_error;

namespace {

struct Grads {
  Tensor out, dx, dw, db;
};

// [B, T, 8] → linear → tanh → [B, T, 12]; with `to_heads`, rope_heads to [3, B, 2, T, 2] (tokens
// in dim 3, position offset = the chunk's first token), optionally with dropout before the tanh.
Grads run(int64_t chunk, bool to_heads, double p, bool recompute) {
  Generator init(3), data(4), drop(5);
  nn::Linear lin(8, 12, true, init);
  Tensor x = randn({2, 37, 8}, data).requires_grad_(true);
  auto segment = [&](const Tensor& part, int64_t first) {
    Tensor y = lin.forward(part);
    if (p > 0) y = dropout(y, p, drop);
    y = tanh(y);
    return to_heads ? rope_heads(y, 2, first) : y;
  };
  Tensor out;
  if (!recompute) {
    out = segment(x, 0);
  } else {
    out = checkpoint_chunks(segment, x, 1, chunk, to_heads ? 3 : 1, &drop);
  }
  sum(mul(out, out)).backward();
  return {out.detach(), x.grad(), lin.weight.grad(), lin.bias.grad()};
}

void expect_same(const Grads& a, const Grads& b, double tol) {
  EXPECT_LT(rel_error(a.out, b.out), tol);
  EXPECT_LT(rel_error(a.dx, b.dx), tol);
  EXPECT_LT(rel_error(a.dw, b.dw), tol);
  EXPECT_LT(rel_error(a.db, b.db), tol);
}

}  // namespace

TEST(CheckpointChunks, EqualsTheWholeSegment) {
  for (bool to_heads : {false, true}) {
    const Grads whole = run(0, to_heads, 0, false);
    for (int64_t chunk : {1, 5, 16, 37, 64}) {
      SCOPED_TRACE(::testing::Message() << "chunk " << chunk << (to_heads ? ", heads" : ""));
      expect_same(run(chunk, to_heads, 0, true), whole, 1e-6);
    }
  }
}

TEST(CheckpointChunks, ReplaysRedrawTheFirstRunsDropoutMasks) {
  // Whole, the segment draws one mask over [2, 37, 12]; chunked, one a chunk: the masks differ,
  // so the reference is the chunked forward recorded normally (no recompute), drawn the same way.
  for (int64_t chunk : {5, 16}) {
    SCOPED_TRACE(::testing::Message() << "chunk " << chunk);
    Generator init(3), data(4), drop_a(5), drop_b(5);
    nn::Linear lin(8, 12, true, init);
    Tensor x = randn({2, 37, 8}, data);
    auto segment_with = [&](Generator& g) {
      return [&lin, &g](const Tensor& part, int64_t) { return tanh(dropout(lin.forward(part), 0.4, g)); };
    };
    // Reference: every chunk recorded, in order.
    Tensor xa = x.clone().requires_grad_(true);
    std::vector<Tensor> parts;
    for (int64_t t = 0; t < 37; t += chunk)
      parts.push_back(segment_with(drop_a)(slice(xa, 1, t, std::min<int64_t>(37, t + chunk)), t));
    Tensor ya = concat(parts, 1);
    sum(mul(ya, ya)).backward();
    const Tensor dxa = xa.grad(), dwa = lin.weight.grad().clone();
    lin.weight.zero_grad();
    lin.bias.zero_grad();

    Tensor xb = x.clone().requires_grad_(true);
    Tensor yb = checkpoint_chunks(segment_with(drop_b), xb, 1, chunk, 1, &drop_b);
    const uint64_t after_forward = drop_b.offset();
    sum(mul(yb, yb)).backward();
    EXPECT_EQ(drop_b.offset(), after_forward) << "the replays must leave the generator where the forward did";
    EXPECT_EQ(drop_a.offset(), drop_b.offset());
    EXPECT_LT(rel_error(yb.detach(), ya.detach()), 1e-7);
    EXPECT_LT(rel_error(xb.grad(), dxa), 1e-6);
    EXPECT_LT(rel_error(lin.weight.grad(), dwa), 1e-6);
  }
}

TEST(CheckpointChunks, WithoutGradientsRunsChunkByChunk) {
  Generator init(3), data(4);
  nn::Linear lin(8, 12, true, init);
  Tensor x = randn({2, 37, 8}, data);
  NoGradGuard no_grad;
  Tensor whole = lin.forward(x);
  Tensor chunked = checkpoint_chunks([&](const Tensor& part, int64_t) { return lin.forward(part); }, x, 1, 10, 1);
  EXPECT_FALSE(chunked.requires_grad());
  EXPECT_LT(rel_error(chunked, whole), 1e-7);
}

TEST(CheckpointChunks, RejectsABadChunkOrDim) {
  Generator data(4);
  Tensor x = randn({2, 5, 3}, data);
  auto id = [](const Tensor& part, int64_t) { return part; };
  EXPECT_THROW(checkpoint_chunks(id, x, 1, 0, 1), Error);
  EXPECT_THROW(checkpoint_chunks(id, x, 3, 2, 1), Error);
}

// A segment that hands its input back unchanged (an identity, or one chunk covering every token,
// where the chunk is the input itself): the output is still a tensor of its own, so the caller's
// input keeps its grad_fn, the gradient passes through, and the recompute node is freed with the
// output (it would otherwise hold the saved input that points back at it: a cycle).
TEST(CheckpointChunks, ASegmentReturningItsInputLeavesTheInputAloneAndNothingBehind) {
  Generator data(6);
  Tensor leaf = randn({2, 5, 3}, data).requires_grad_(true);
  Tensor x = mul_scalar(leaf, 2.0);  // a non-leaf input
  const auto x_fn = x.grad_fn();
  auto identity = [](const Tensor& t) { return t; };
  auto identity_chunk = [](const Tensor& t, int64_t) { return t; };
  std::weak_ptr<Node> node;
  {  // dropped without a backward (as when a loss is computed but not trained on)
    Tensor b = checkpoint_chunks(identity_chunk, x, 1, 8, 1);
    node = b.grad_fn();
  }
  EXPECT_TRUE(node.expired()) << "the recompute node outlived its output";
  Tensor a = checkpoint(identity, x);
  EXPECT_EQ(x.grad_fn(), x_fn) << "checkpoint rewired its caller's input";
  EXPECT_NE(a.impl_ptr(), x.impl_ptr());
  sum(checkpoint_chunks(identity_chunk, a, 1, 8, 1)).backward();
  EXPECT_EQ(leaf.grad().to_vector(), std::vector<double>(30, 2.0));
}
