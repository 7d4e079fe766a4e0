// The transformer LM: shapes, per-layer attention, causality, and activation recompute giving the
// same loss and gradients as the plain forward (dropout on, so the replay must redraw the same
// masks).
#include <gtest/gtest.h>

#include <cmath>

#include "common/gradcheck.h"
#include "framework/nn/parameter_buffer.h"
#include "models/transformer.h"

using namespace sparrow;
using sparrow::testing::rel_error;

namespace {

models::TransformerOptions small(int64_t layers = 2) {
  models::TransformerOptions o;
  o.n_layers = layers;
  o.d_model = 32;
  o.n_heads = 4;
  o.mlp_ratio = 2;
  attn::AttentionConfig a;
  a.block_size = 8;
  for (int64_t i = 0; i < layers; ++i) o.attention.push_back(a);
  return o;
}

Tensor ids(int64_t B, int64_t T, uint64_t seed) {
  Generator g(seed);
  std::vector<int32_t> v(static_cast<size_t>(B * T));
  for (auto& x : v) x = static_cast<int32_t>(g.below(256));
  return from_ints(v, {B, T});
}

// A 3-layer model's loss on a fixed batch (B 2, T 32) and the gradient of every parameter.
std::pair<double, Tensor> loss_and_grads(const models::TransformerOptions& o) {
  Generator g(5);
  models::TransformerLM m(o, g);
  nn::ParameterBuffer pb = nn::ParameterBuffer::pack(m);
  pb.zero_grad();
  Tensor loss = m.loss(ids(2, 32, 6), ids(2, 32, 7), 0);
  loss.backward();
  return {loss.item(), pb.grad().clone()};
}

}  // namespace

TEST(Transformer, LogitsShapeAndNamedParameters) {
  Generator g(0);
  models::TransformerLM m(small(), g);
  Tensor logits = m.forward(ids(2, 24, 1), 0);
  EXPECT_EQ(logits.shape(), (Shape{2, 24, 256}));
  EXPECT_NO_THROW(m.parameter("blocks.1.mlp.fc.weight"));
  EXPECT_NO_THROW(m.parameter("blocks.0.qkv.weight"));
  EXPECT_NO_THROW(m.parameter("embed.weight"));
}

TEST(Transformer, EachLayerBuildsItsOwnAttention) {
  models::TransformerOptions o = small(3);
  o.attention[0].backend = "block_sparse";
  o.attention[0].sparsity = 0.5;
  o.attention[1].backend = "hierarchical";
  Generator g(0);
  models::TransformerLM m(o, g);
  m.forward(ids(1, 64, 2), 0);
  auto s = m.attention_stats();
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].backend, "block_sparse");
  EXPECT_LT(s[0].density, 1.0);
  EXPECT_EQ(s[1].backend, "hierarchical");
  EXPECT_EQ(s[2].backend, "dense");
}

TEST(Transformer, EarlierLogitsDoNotDependOnLaterTokens) {
  for (const char* backend : {"dense", "block_sparse", "hierarchical", "adaptive"}) {
    models::TransformerOptions o = small(2);
    for (auto& a : o.attention) {
      a.backend = backend;
      a.sparsity = 0.5;
    }
    Generator g(3);
    models::TransformerLM m(o, g);
    NoGradGuard ng;
    Tensor a = ids(1, 48, 4);
    std::vector<double> la = m.forward(a, 0).to_vector();
    std::vector<int32_t> changed(48);
    for (int i = 0; i < 48; ++i) changed[size_t(i)] = static_cast<int32_t>(a.to_vector()[size_t(i)]);
    changed[40] = (changed[40] + 1) % 256;  // perturb token 40
    std::vector<double> lb = m.forward(from_ints(changed, {1, 48}), 0).to_vector();
    for (size_t i = 0; i < size_t(40 * 256); ++i) ASSERT_EQ(la[i], lb[i]) << backend << " position " << i / 256;
    double diff = 0;
    for (size_t i = 40 * 256; i < la.size(); ++i) diff += std::abs(la[i] - lb[i]);
    EXPECT_GT(diff, 0) << backend;
  }
}

TEST(Transformer, RecomputeGivesTheSameLossAndGradients) {
  auto run = [](bool recompute) {
    models::TransformerOptions o = small(3);
    o.recompute = recompute;
    o.dropout = 0.2;
    return loss_and_grads(o);
  };
  auto [l0, g0] = run(false);
  auto [l1, g1] = run(true);
  EXPECT_EQ(l0, l1);
  EXPECT_LT(rel_error(g1, g0), 1e-6);
  EXPECT_GT(std::abs(g0.to_vector()[100]) + std::abs(g0.to_vector()[2000]), 0);
}

// recompute_chunk: the token-wise parts in checkpointed chunks of 10 tokens (32 = 3 · 10 + 2)
// leave the loss and every gradient as they were, with and without whole-block recompute; with
// dropout, the chunked model draws one mask a chunk, and whole-block recompute around the chunks
// gives the same (each chunk's own replay is checked against a recorded reference in
// tests/framework/checkpoint_chunks_test.cpp).
TEST(Transformer, RecomputeChunksGiveTheSameLossAndGradients) {
  auto run = [](bool recompute, int64_t chunk, double dropout) {
    models::TransformerOptions o = small(3);
    o.recompute = recompute;
    o.recompute_chunk = chunk;
    o.dropout = dropout;
    return loss_and_grads(o);
  };
  auto [l0, g0] = run(false, 0, 0);
  for (bool recompute : {false, true}) {
    SCOPED_TRACE(recompute ? "recompute" : "no recompute");
    auto [l1, g1] = run(recompute, 10, 0);
    EXPECT_NEAR(l1, l0, 1e-6 * std::abs(l0));
    EXPECT_LT(rel_error(g1, g0), 1e-5);
  }
  auto [ld, gd] = run(false, 10, 0.2);
  auto [lr, gr] = run(true, 10, 0.2);
  EXPECT_EQ(lr, ld);
  EXPECT_LT(rel_error(gr, gd), 1e-6);
  EXPECT_NE(ld, l0);  // dropout did act
}
