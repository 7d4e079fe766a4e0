// Layout arithmetic with parameters near the integer limits: a window, rate or stride near 2^63
// gives the same (correct) layout as the largest value that still means something, the block
// count never overflows, and the size estimate callers check before building bounds the real one.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "attention/layout/block_layout.h"
#include "attention/layout/patterns.h"

using namespace sparrow::attn;

namespace {

constexpr int64_t kHuge = std::numeric_limits<int64_t>::max();

AttentionConfig config(std::vector<std::string> names, double sparsity = 0.0) {
  AttentionConfig cfg;
  cfg.backend = "block_sparse";
  cfg.block_size = 16;
  cfg.sparsity = sparsity;
  cfg.pattern.names = std::move(names);
  cfg.pattern.window = 1;
  cfg.pattern.stride = 4;
  cfg.pattern.dilation_rates = {2};
  return cfg;
}

std::vector<std::vector<int32_t>> rows_of(const BlockLayout& L) {
  const BlockCSR& csr = L.head(0);
  std::vector<std::vector<int32_t>> rows(csr.row_ptr.size() - 1);
  for (size_t r = 0; r + 1 < csr.row_ptr.size(); ++r)
    rows[r].assign(csr.col_idx.begin() + csr.row_ptr[r], csr.col_idx.begin() + csr.row_ptr[r + 1]);
  return rows;
}

}  // namespace

TEST(LayoutLimits, HugeWindowRateOrStrideActsAsTheLargestMeaningfulOne) {
  constexpr int64_t seq = 256, nb = 16;  // block 16
  for (bool causal : {false, true})
    for (double sparsity : {0.0, 0.7})
      for (const char* name : {"local", "dilated", "strided", "fixed"})
        for (int64_t huge : {kHuge, kHuge - 1, int64_t(1) << 62}) {
          AttentionConfig big = config({name}, sparsity), sane = config({name}, sparsity);
          big.pattern.window = huge;
          sane.pattern.window = nb + 1;
          if (std::string(name) == "dilated") {
            big.pattern.dilation_rates = {2, huge};
            sane.pattern.dilation_rates = {2, nb + 1};
          }
          if (std::string(name) == "strided" || std::string(name) == "fixed") {
            big.pattern.stride = huge;
            sane.pattern.stride = nb + 1;
          }
          EXPECT_EQ(rows_of(build_layout(big, seq, 1, causal)), rows_of(build_layout(sane, seq, 1, causal)))
              << name << " huge=" << huge << " causal=" << causal << " sparsity=" << sparsity;
        }
  // And that layout is the right one: a window past every block is dense.
  AttentionConfig local = config({"local"});
  local.pattern.window = kHuge;
  const BlockLayout L = build_layout(local, seq, 1, false);
  EXPECT_EQ(L.active_blocks(), nb * nb);
}

TEST(LayoutLimits, BlockCountDoesNotOverflow) {
  EXPECT_EQ(layout_blocks(10, 4), 3);
  EXPECT_EQ(layout_blocks(12, 4), 3);
  EXPECT_EQ(layout_blocks(kHuge, 2), int64_t(1) << 62);
  EXPECT_EQ(layout_blocks(100, kHuge), 1);
  AttentionConfig cfg = config({"local"});
  cfg.block_size = kHuge;  // seq + block − 1 used to wrap negative
  const BlockLayout L = build_layout(cfg, 100, 1, true);
  EXPECT_EQ(L.num_q_blocks, 1);
  EXPECT_EQ(L.active_blocks(), 1);
}

TEST(LayoutLimits, EstimateBoundsTheActiveBlocks) {
  for (bool causal : {false, true})
    for (double sparsity : {0.0, 0.5, 0.95})
      for (const std::vector<std::string>& names :
           std::vector<std::vector<std::string>>{{"local"},
                                                 {"dilated"},
                                                 {"strided"},
                                                 {"fixed"},
                                                 {"bigbird"},
                                                 {"global", "random"},
                                                 {"local", "dilated", "strided", "fixed"}}) {
        AttentionConfig cfg = config(names, sparsity);
        cfg.pattern.global_blocks = 2;
        cfg.pattern.random_blocks = 3;
        cfg.pattern.per_head = true;
        for (int64_t seq : {16, 200, 4096}) {
          const BlockLayout L = build_layout(cfg, seq, 3, causal);
          EXPECT_GE(estimate_active_blocks(cfg, seq, 3, causal), static_cast<double>(L.active_blocks()))
              << names[0] << " seq " << seq << " causal " << causal << " sparsity " << sparsity;
        }
      }
  // Huge inputs give a huge (not a wrapped) estimate, without building anything.
  AttentionConfig cfg = config({"local"});
  cfg.block_size = 1;
  EXPECT_GE(estimate_active_blocks(cfg, 1'000'000'000, 1, false), 1e9);
  cfg.pattern.window = kHuge;
  EXPECT_GE(estimate_active_blocks(cfg, 1'000'000'000, 1, false), 1e17);
}
