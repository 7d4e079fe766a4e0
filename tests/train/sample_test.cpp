// Sampling: the token choice (greedy, top-k, temperature, seeds) and generation with the KV
// cache — determinism, seed repeats, the length policy, and greedy text equal to the text a
// cache-less loop gets from whole forwards.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "framework/autograd/node.h"
#include "framework/nn/init.h"
#include "framework/ops/ops.h"
#include "models/transformer.h"
#include "train/sample/generate.h"
#include "train/sample/token_choice.h"

using namespace sparrow;
using train::SamplingOptions;

namespace {

SamplingOptions opts(double temperature, int64_t top_k) {
  SamplingOptions o;
  o.temperature = temperature;
  o.top_k = top_k;
  return o;
}

std::unique_ptr<models::TransformerLM> random_model(const std::string& backend, uint64_t seed) {
  models::TransformerOptions o;
  o.n_layers = 2;
  o.d_model = 32;
  o.n_heads = 4;
  o.mlp_ratio = 2;
  attn::AttentionConfig a;
  a.backend = backend;
  a.block_size = 4;
  a.sparsity = 0.5;
  o.attention = {a, a};
  Generator g(seed);
  auto m = std::make_unique<models::TransformerLM>(o, g);
  for (auto& p : m->named_parameters())
    if (p.tensor.dim() == 2) {
      Tensor t = p.tensor;
      nn::init::normal_(t, g, 0.0, 0.25);
    }
  m->eval();
  return m;
}

train::GenerateOptions gen_opts(int64_t tokens, double temperature, uint64_t seed) {
  train::GenerateOptions o;
  o.tokens = tokens;
  o.seq_len = 40;
  o.sampling = opts(temperature, 0);
  o.seed = seed;
  return o;
}

}  // namespace

TEST(TokenChoice, GreedyTakesTheLargestLogitAndTheLowerIndexOnATie) {
  Generator g(0);
  EXPECT_EQ(train::choose_token({0.5f, 2.0f, -1.0f, 1.9f}, opts(0, 0), g), 1);
  EXPECT_EQ(train::choose_token({3.0f, 1.0f, 3.0f}, opts(0, 0), g), 0);
  EXPECT_EQ(g.offset(), 0u);  // greedy draws nothing
}

TEST(TokenChoice, TopOneIsGreedyAtAnyTemperature) {
  Generator g(7);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(train::choose_token({0.1f, 0.3f, 0.2f, 0.25f}, opts(5.0, 1), g), 1);
}

TEST(TokenChoice, TopKDrawsOnlyAmongTheKLargest) {
  Generator g(1);
  const std::vector<float> logits{0.0f, 1.0f, 0.9f, -2.0f, 0.95f, 0.1f};
  std::map<int64_t, int> seen;
  for (int i = 0; i < 600; ++i) ++seen[train::choose_token(logits, opts(1.0, 3), g)];
  EXPECT_EQ(seen.size(), 3u);
  for (int64_t t : {1, 2, 4}) EXPECT_GT(seen[t], 100) << t;
}

TEST(TokenChoice, FrequenciesFollowTheTemperedSoftmax) {
  const std::vector<float> logits{1.0f, 0.0f, -1.0f};
  const double T = 0.7;
  double z = 0;
  for (float l : logits) z += std::exp(l / T);
  Generator g(3);
  const int n = 40000;
  std::vector<int> count(3);
  for (int i = 0; i < n; ++i) ++count[size_t(train::choose_token(logits, opts(T, 0), g))];
  for (size_t t = 0; t < 3; ++t) EXPECT_NEAR(count[t] / double(n), std::exp(logits[t] / T) / z, 0.01) << t;
}

TEST(TokenChoice, TheSameSeedRepeatsTheDraws) {
  const std::vector<float> logits{0.2f, 0.1f, 0.0f, 0.3f, 0.25f};
  Generator a(42), b(42), c(43);
  std::vector<int64_t> da, db, dc;
  for (int i = 0; i < 64; ++i) {
    da.push_back(train::choose_token(logits, opts(1.0, 0), a));
    db.push_back(train::choose_token(logits, opts(1.0, 0), b));
    dc.push_back(train::choose_token(logits, opts(1.0, 0), c));
  }
  EXPECT_EQ(da, db);
  EXPECT_NE(da, dc);
}

TEST(TokenChoice, RefusesBadOptions) {
  Generator g(0);
  EXPECT_THROW(train::choose_token({1.0f}, opts(-0.5, 0), g), Error);
  EXPECT_THROW(train::choose_token({1.0f}, opts(NAN, 0), g), Error);
  EXPECT_THROW(train::choose_token({1.0f}, opts(1.0, -1), g), Error);
}

TEST(Generate, GreedyIsDeterministicAndSeedsRepeat) {
  for (const char* backend : {"dense", "adaptive"}) {
    auto m = random_model(backend, 2);
    const std::string greedy = train::generate(*m, "The ", gen_opts(20, 0, 1));
    EXPECT_EQ(greedy.size(), 20u);
    EXPECT_EQ(train::generate(*m, "The ", gen_opts(20, 0, 99)), greedy) << backend << ": greedy ignores the seed";
    const std::string s1 = train::generate(*m, "The ", gen_opts(20, 1.0, 5));
    EXPECT_EQ(train::generate(*m, "The ", gen_opts(20, 1.0, 5)), s1) << backend;
    EXPECT_NE(train::generate(*m, "The ", gen_opts(20, 1.0, 6)), s1) << backend;
  }
}

TEST(Generate, GreedyTextEqualsWholeForwardsWithoutACache) {
  // The cache-less loop: at each length n, the forward over the text so far, padded to the
  // model's length (a causal model: padding after position n − 1 changes nothing there), and the
  // argmax of position n − 1. Hierarchical: its rows depend on the length's geometry, which the
  // padding fixes at seq_len exactly as decode does.
  auto m = random_model("hierarchical", 4);
  const std::string prompt = "ab";
  const std::string got = train::generate(*m, prompt, gen_opts(30, 0, 0));
  std::vector<int32_t> ids(prompt.begin(), prompt.end());
  std::string want;
  NoGradGuard ng;
  for (int i = 0; i < 30; ++i) {
    std::vector<int32_t> padded = ids;
    padded.resize(40, 0);
    const Tensor logits = m->forward(from_ints(padded, {1, 40}), 0);
    const std::vector<float> last =
        slice(logits, 1, int64_t(ids.size()) - 1, int64_t(ids.size())).contiguous().to_float_vector();
    Generator unused(0);
    const int64_t t = train::choose_token(last, opts(0, 0), unused);
    want.push_back(static_cast<char>(t));
    ids.push_back(static_cast<int32_t>(t));
  }
  EXPECT_EQ(got, want);
}

TEST(Generate, RefusesWhatDoesNotFitTheSequenceLength) {
  auto m = random_model("dense", 1);
  EXPECT_THROW(train::generate(*m, "", gen_opts(1, 0, 0)), Error);
  EXPECT_THROW(train::generate(*m, std::string(41, 'x'), gen_opts(1, 0, 0)), Error);
  EXPECT_THROW(train::generate(*m, std::string(30, 'x'), gen_opts(12, 0, 0)), Error);    // 30 + 12 − 1 > 40
  EXPECT_EQ(train::generate(*m, std::string(30, 'x'), gen_opts(11, 0, 0)).size(), 11u);  // exactly fits
  EXPECT_EQ(train::generate(*m, std::string(40, 'x'), gen_opts(1, 0, 0)).size(), 1u);
  EXPECT_EQ(train::max_new_tokens(30, 40), 11);
  EXPECT_EQ(train::max_new_tokens(41, 40), 0);
}
