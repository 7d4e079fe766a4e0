// The auto backend: the rule from length to (backend, sparsity), and that its output is exactly
// the chosen backend's at that sparsity, with stats naming the backend that ran.
#include <gtest/gtest.h>

#include "attention/attention.h"
#include "attention/backends/auto_select.h"
#include "attention_reference.h"

using namespace sparrow;
using namespace sparrow::attn;
namespace st = sparrow::testing;

namespace {

AttentionConfig auto_config(const std::string& sparse_backend) {
  AttentionConfig cfg;
  cfg.backend = "auto";
  cfg.block_size = 8;
  cfg.pattern.names = {"bigbird"};
  cfg.pattern.window = 1;
  cfg.pattern.seed = 5;
  cfg.hierarchical = {2, 2, 1};
  cfg.adaptive = {0, 1};
  cfg.autocfg = {64, sparse_backend, 32, 0.9};
  return cfg;
}

}  // namespace

TEST(Auto, ChoiceAndSparsityByLength) {
  const AutoConfig ac{64, "block_sparse", 32, 0.9};
  EXPECT_EQ(auto_choice(ac, 1).backend, "dense");
  EXPECT_EQ(auto_choice(ac, 64).backend, "dense");
  EXPECT_DOUBLE_EQ(auto_choice(ac, 64).sparsity, 0.0);
  EXPECT_EQ(auto_choice(ac, 65).backend, "block_sparse");
  EXPECT_DOUBLE_EQ(auto_choice(ac, 65).sparsity, 1.0 - 32.0 / 65.0);
  EXPECT_DOUBLE_EQ(auto_choice(ac, 128).sparsity, 0.75);
  EXPECT_DOUBLE_EQ(auto_choice(ac, 256).sparsity, 0.875);
  EXPECT_DOUBLE_EQ(auto_choice(ac, 320).sparsity, 0.9);   // 1 − 32/320 = 0.9 exactly at the clamp
  EXPECT_DOUBLE_EQ(auto_choice(ac, 4096).sparsity, 0.9);  // clamped to max_sparsity
  // A budget larger than the length: no sparsity (never negative).
  const AutoConfig wide{16, "adaptive", 100, 0.99};
  EXPECT_EQ(auto_choice(wide, 50).backend, "adaptive");
  EXPECT_DOUBLE_EQ(auto_choice(wide, 50).sparsity, 0.0);
  // The shipped config's example: 8K tokens at a 512 budget is 93.75%.
  EXPECT_DOUBLE_EQ(auto_choice({2048, "block_sparse", 512, 0.99}, 8192).sparsity, 0.9375);
}

TEST(Auto, OutputIsTheChosenBackends) {
  for (const std::string sparse : {"block_sparse", "hierarchical", "adaptive"})
    for (bool causal : {false, true})
      for (int64_t N : {40, 64, 100, 333}) {
        SCOPED_TRACE(sparse + " N=" + std::to_string(N) + (causal ? " causal" : ""));
        AttentionConfig cfg = auto_config(sparse);
        auto a = make_attention(cfg);
        ASSERT_EQ(a->name(), "auto");
        const AutoChoice choice = auto_choice(cfg.autocfg, N);
        AttentionConfig direct_cfg = cfg;
        direct_cfg.backend = choice.backend;
        direct_cfg.sparsity = choice.sparsity;
        auto direct = make_attention(direct_cfg);

        Generator g(N);
        Tensor q = randn({2, 2, N, 8}, g, DType::F64), k = randn({2, 2, N, 8}, g, DType::F64),
               v = randn({2, 2, N, 8}, g, DType::F64), w = randn({2, 2, N, 8}, g, DType::F64);
        q.requires_grad_();
        Tensor o = a->forward({q, k, v, causal, 0});
        o.backward(w);
        const std::vector<double> dq = q.grad().to_vector();
        q.zero_grad();
        Tensor od = direct->forward({q, k, v, causal, 0});
        od.backward(w);
        EXPECT_EQ(o.to_vector(), od.to_vector());
        EXPECT_EQ(dq, q.grad().to_vector());

        const AttentionStats s = a->stats(), sd = direct->stats();
        EXPECT_EQ(s.backend, N <= 64 ? "dense" : sparse);
        EXPECT_EQ(s.backend, sd.backend);
        EXPECT_EQ(s.active_blocks, sd.active_blocks);
        EXPECT_DOUBLE_EQ(s.flops, sd.flops);
        EXPECT_DOUBLE_EQ(s.target_sparsity, choice.sparsity);
        if (N > 64 && sparse != "hierarchical") {
          EXPECT_LT(s.density, 1.0);
        }
      }
}

TEST(Auto, KeepsOneInstancePerBackendWhileItsSparsityHolds) {
  auto cfg = auto_config("block_sparse");
  AutoAttention a(cfg);
  Generator g(3);
  EXPECT_EQ(a.instance("dense"), nullptr);
  Tensor small = randn({1, 1, 32, 4}, g), large = randn({1, 1, 256, 4}, g), larger = randn({1, 1, 512, 4}, g);
  a.forward({small, small, small, true, 0});
  Attention* dense = a.instance("dense");
  ASSERT_NE(dense, nullptr);
  EXPECT_EQ(a.instance("block_sparse"), nullptr);
  a.forward({large, large, large, true, 1});
  Attention* sparse = a.instance("block_sparse");
  ASSERT_NE(sparse, nullptr);
  EXPECT_DOUBLE_EQ(a.stats().target_sparsity, 0.875);
  a.forward({large, large, large, true, 2});
  EXPECT_EQ(a.instance("block_sparse"), sparse);  // the same length: the same instance
  EXPECT_DOUBLE_EQ(a.stats().target_sparsity, 0.875);
  EXPECT_DOUBLE_EQ(sparse->stats().target_sparsity, 0.875);  // the chosen backend ran at the rule's value
  a.forward({larger, larger, larger, true, 3});
  EXPECT_DOUBLE_EQ(a.stats().target_sparsity, 0.9);  // rebuilt at the new length's sparsity
  a.forward({small, small, small, true, 4});
  EXPECT_EQ(a.instance("dense"), dense);
  EXPECT_EQ(a.stats().backend, "dense");
}

TEST(Auto, RejectsBadConfigs) {
  auto cfg = auto_config("auto");
  EXPECT_THROW(AutoAttention{cfg}, Error);
  cfg = auto_config("flashy");
  try {
    AutoAttention a(cfg);
    FAIL() << "no error for an unknown sparse backend";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("block_sparse"), std::string::npos) << e.what();
  }
  cfg = auto_config("block_sparse");
  cfg.autocfg.max_sparsity = 1.0;
  EXPECT_THROW(AutoAttention{cfg}, Error);
  cfg.autocfg.max_sparsity = 0.9;
  cfg.autocfg.budget_tokens = 0;
  EXPECT_THROW(AutoAttention{cfg}, Error);
  // A sparsity or schedule the rule would override is refused, not ignored.
  cfg = auto_config("block_sparse");
  cfg.sparsity = 0.95;
  try {
    AutoAttention a(cfg);
    FAIL() << "no error for attention.sparsity under auto";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attention.sparsity"), std::string::npos) << e.what();
  }
  cfg.sparsity = 0.0;
  cfg.schedule.from = 0.01;
  cfg.schedule.to = 0.9;
  cfg.schedule.start = 0;
  cfg.schedule.end = 10;
  ASSERT_TRUE(cfg.schedule.active());
  EXPECT_THROW(AutoAttention{cfg}, Error);
}
