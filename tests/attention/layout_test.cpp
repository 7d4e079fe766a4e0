// Block layouts: CSR invariants, each pattern against its direct definition, budgets at target
// sparsity, the floor note, per-head randomness, the cache, and a 1M-token build.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "attention/layout/block_layout.h"
#include "attention/layout/layout_cache.h"
#include "attention/layout/layout_png.h"
#include "attention/layout/patterns.h"
#include "framework/core/error.h"

using namespace sparrow;
using namespace sparrow::attn;

namespace {

AttentionConfig config(std::vector<std::string> names, double sparsity = 0.0, int64_t block = 16) {
  AttentionConfig cfg;
  cfg.backend = "block_sparse";
  cfg.block_size = block;
  cfg.sparsity = sparsity;
  cfg.pattern.names = std::move(names);
  return cfg;
}

std::vector<std::vector<int32_t>> rows_of(const BlockCSR& csr) {
  std::vector<std::vector<int32_t>> rows(csr.row_ptr.size() - 1);
  for (size_t r = 0; r + 1 < csr.row_ptr.size(); ++r)
    rows[r].assign(csr.col_idx.begin() + csr.row_ptr[r], csr.col_idx.begin() + csr.row_ptr[r + 1]);
  return rows;
}

// CSR well-formed, causal respected, transpose the same pairs with ascending rows per column.
// O(active blocks): the transpose is checked by transposing it back.
void expect_valid(const BlockLayout& L) {
  ASSERT_FALSE(L.heads.empty());
  const int64_t nb = L.num_q_blocks;
  EXPECT_EQ(nb, (L.seq_len + L.block_size - 1) / L.block_size);
  for (const BlockCSR& csr : L.heads) {
    ASSERT_EQ(static_cast<int64_t>(csr.row_ptr.size()), nb + 1);
    ASSERT_EQ(csr.row_ptr[0], 0);
    ASSERT_EQ(csr.row_ptr[nb], csr.nnz());
    for (int64_t r = 0; r < nb; ++r) {
      ASSERT_LE(csr.row_ptr[r], csr.row_ptr[r + 1]);
      for (int64_t i = csr.row_ptr[r]; i < csr.row_ptr[r + 1]; ++i) {
        const int32_t c = csr.col_idx[i];
        ASSERT_GE(c, 0);
        ASSERT_LT(c, L.num_k_blocks);
        if (i > csr.row_ptr[r]) {
          ASSERT_LT(csr.col_idx[i - 1], c) << "row " << r << " not strictly ascending";
        }
        if (L.causal) {
          ASSERT_LE(c, r) << "causal layout has block (" << r << ", " << c << ") above the diagonal";
        }
      }
    }
    ASSERT_EQ(static_cast<int64_t>(csr.col_ptr.size()), L.num_k_blocks + 1);
    ASSERT_EQ(csr.col_ptr[0], 0);
    ASSERT_EQ(csr.col_ptr[L.num_k_blocks], csr.nnz());
    ASSERT_EQ(csr.row_idx.size(), csr.col_idx.size());
    for (int64_t c = 0; c < L.num_k_blocks; ++c)
      for (int64_t i = csr.col_ptr[c] + 1; i < csr.col_ptr[c + 1]; ++i) {
        ASSERT_LT(csr.row_idx[i - 1], csr.row_idx[i]) << "column " << c << " not strictly ascending";
      }
    // Transpose the transpose (its columns are our rows): it must give back row_ptr/col_idx.
    BlockCSR back;
    back.row_ptr = csr.col_ptr;
    back.col_idx = csr.row_idx;
    back.build_transpose(nb);
    ASSERT_EQ(back.col_ptr, csr.row_ptr);
    ASSERT_EQ(back.row_idx, csr.col_idx);
  }
}

// The layout's head-0 rows equal the direct predicate's (restricted to the causal triangle).
void expect_matches(const BlockLayout& L, const std::function<bool(int64_t, int64_t)>& in_pattern) {
  const auto rows = rows_of(L.head(0));
  for (int64_t r = 0; r < L.num_q_blocks; ++r) {
    std::vector<int32_t> want;
    for (int64_t c = 0; c < L.num_k_blocks; ++c)
      if ((!L.causal || c <= r) && (c == r || in_pattern(r, c))) want.push_back(static_cast<int32_t>(c));
    ASSERT_EQ(rows[r], want) << "row " << r << " of " << L.description;
  }
}

BlockLayout build(const AttentionConfig& cfg, int64_t n, bool causal, int64_t heads = 1) {
  BlockLayout L = build_layout(cfg, n, heads, causal);
  expect_valid(L);
  return L;
}

}  // namespace

TEST(BlockCSR, TransposeOfAHandMadeLayout) {
  BlockCSR csr;
  csr.row_ptr = {0, 2, 3, 6};
  csr.col_idx = {0, 2, 1, 0, 1, 2};
  csr.build_transpose(3);
  EXPECT_EQ(csr.col_ptr, (std::vector<int64_t>{0, 2, 4, 6}));
  EXPECT_EQ(csr.row_idx, (std::vector<int32_t>{0, 2, 1, 2, 0, 2}));
  BlockCSR bad;
  bad.row_ptr = {0, 1};
  bad.col_idx = {5};
  EXPECT_THROW(bad.build_transpose(3), Error);
}

TEST(BlockLayout, DenseCountsAndRaggedLastBlock) {
  // 1000 tokens in blocks of 64: 16 blocks, the last one 40 tokens.
  auto cfg = config({"local"}, 0.0, 64);
  cfg.pattern.window = 100;  // wider than the sequence: every block
  for (bool causal : {false, true}) {
    BlockLayout L = build(cfg, 1000, causal);
    EXPECT_EQ(L.num_q_blocks, 16);
    EXPECT_EQ(L.dense_blocks(), causal ? 16 * 17 / 2 : 256);
    EXPECT_EQ(L.active_blocks(), L.dense_blocks());
    EXPECT_DOUBLE_EQ(L.density(), 1.0);
    EXPECT_DOUBLE_EQ(L.sparsity(), 0.0);
    const auto rows = rows_of(L.head(0));
    EXPECT_EQ(rows[15].back(), 15);  // the ragged block is a row and a column like any other
    EXPECT_GT(L.memory_bytes(), static_cast<size_t>(L.active_blocks()) * 8);
  }
  EXPECT_EQ(build(cfg, 1024, false).num_q_blocks, 16);
  EXPECT_EQ(build(cfg, 1025, false).num_q_blocks, 17);
}

TEST(Patterns, LocalMatchesDefinition) {
  auto cfg = config({"local"});
  cfg.pattern.window = 3;
  for (bool causal : {false, true})
    expect_matches(build(cfg, 16 * 40 - 5, causal), [](int64_t r, int64_t c) { return std::llabs(r - c) <= 3; });
}

TEST(Patterns, DilatedMatchesDefinition) {
  auto cfg = config({"dilated"});
  cfg.pattern.window = 2;
  cfg.pattern.dilation_rates = {3, 5};
  for (bool causal : {false, true})
    expect_matches(build(cfg, 16 * 37, causal), [](int64_t r, int64_t c) {
      const int64_t d = std::llabs(r - c);
      for (int64_t rate : {3, 5})
        for (int64_t k = 1; k <= 2; ++k)
          if (d == k * rate) return true;
      return false;
    });
}

TEST(Patterns, StridedMatchesSparseTransformer) {
  auto cfg = config({"strided"});
  cfg.pattern.stride = 4;
  for (bool causal : {false, true})
    expect_matches(build(cfg, 16 * 41, causal), [](int64_t r, int64_t c) {
      const int64_t d = std::llabs(r - c);
      return d < 4 || d % 4 == 0;
    });
}

TEST(Patterns, FixedMatchesSparseTransformer) {
  auto cfg = config({"fixed"});
  cfg.pattern.stride = 5;
  for (bool causal : {false, true})
    expect_matches(build(cfg, 16 * 33 + 1, causal), [](int64_t r, int64_t c) { return r / 5 == c / 5 || c % 5 == 4; });
}

TEST(Patterns, GlobalRowsAndColumns) {
  auto cfg = config({"global"});
  cfg.pattern.global_blocks = 2;
  for (bool causal : {false, true})
    expect_matches(build(cfg, 16 * 20, causal), [](int64_t r, int64_t c) { return r < 2 || c < 2; });
}

TEST(Patterns, UnionOfNamedPatterns) {
  auto cfg = config({"local", "dilated", "global", "fixed"});
  cfg.pattern.window = 1;
  cfg.pattern.dilation_rates = {4};
  cfg.pattern.global_blocks = 1;
  cfg.pattern.stride = 6;
  for (bool causal : {false, true})
    expect_matches(build(cfg, 16 * 50, causal), [](int64_t r, int64_t c) {
      const int64_t d = std::llabs(r - c);
      return d <= 1 || d == 4 || r < 1 || c < 1 || r / 6 == c / 6 || c % 6 == 5;
    });
}

TEST(Patterns, RandomDrawsDistinctBlocksPerRow) {
  auto cfg = config({"random"});
  cfg.pattern.random_blocks = 3;
  for (bool causal : {false, true}) {
    BlockLayout L = build(cfg, 16 * 64, causal);
    const auto rows = rows_of(L.head(0));
    std::set<int64_t> offsets;
    for (int64_t r = 0; r < 64; ++r) {
      const int64_t range = causal ? r + 1 : 64;
      EXPECT_EQ(static_cast<int64_t>(rows[r].size()), std::min<int64_t>(range, 1 + 3)) << "row " << r;
      EXPECT_TRUE(std::binary_search(rows[r].begin(), rows[r].end(), static_cast<int32_t>(r)));
      for (int32_t c : rows[r]) offsets.insert(c - r);
    }
    // Uniform over the row's range: the draws reach far and near, not a fixed band.
    EXPECT_GT(offsets.size(), 40u);
  }
}

TEST(Patterns, BigBirdIsWindowGlobalAndRandom) {
  auto cfg = config({"bigbird"});
  cfg.pattern.window = 2;
  cfg.pattern.global_blocks = 1;
  cfg.pattern.random_blocks = 3;
  for (bool causal : {false, true}) {
    BlockLayout L = build(cfg, 16 * 48, causal);
    const auto rows = rows_of(L.head(0));
    for (int64_t r = 0; r < 48; ++r) {
      const int64_t range = causal ? r + 1 : 48;
      std::set<int32_t> fixed_part;
      for (int64_t c = 0; c < range; ++c)
        if (std::llabs(r - c) <= 2 || c < 1 || r < 1) fixed_part.insert(static_cast<int32_t>(c));
      const std::set<int32_t> got(rows[r].begin(), rows[r].end());
      for (int32_t c : fixed_part) EXPECT_TRUE(got.count(c)) << "row " << r << " lacks " << c;
      const int64_t randoms = r < 1 ? 0 : std::min<int64_t>(3, range - static_cast<int64_t>(fixed_part.size()));
      EXPECT_EQ(got.size(), fixed_part.size() + randoms) << "row " << r;
    }
  }
}

TEST(Patterns, UnknownNameAndBadParametersThrow) {
  EXPECT_THROW(build_layout(config({"lcoal"}), 256, 1, false), Error);
  auto cfg = config({"strided"});
  cfg.pattern.stride = 0;
  EXPECT_THROW(build_layout(cfg, 256, 1, false), Error);
  EXPECT_THROW(build_layout(config({"local"}, 1.0), 256, 1, false), Error);
  EXPECT_THROW(build_layout(config({"local"}, -0.1), 256, 1, false), Error);
  EXPECT_THROW(build_layout(config({"local"}), 0, 1, false), Error);
  EXPECT_THROW(build_layout(config({}), 256, 1, false), Error);
  try {
    build_layout(config({"lcoal"}), 256, 1, false);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lcoal"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("bigbird"), std::string::npos);
  }
}

TEST(Patterns, DeterministicUnderSeed) {
  auto cfg = config({"bigbird"}, 0.9);
  const BlockLayout a = build(cfg, 16 * 200, true), b = build(cfg, 16 * 200, true);
  EXPECT_EQ(a.head(0).col_idx, b.head(0).col_idx);
  cfg.pattern.seed = 7;
  const BlockLayout c = build(cfg, 16 * 200, true);
  EXPECT_NE(a.head(0).col_idx, c.head(0).col_idx);
  EXPECT_EQ(a.active_blocks(), c.active_blocks());  // the budget does not depend on the draws
}

TEST(Patterns, PerHeadLayoutsDifferOnlyInTheRandomPart) {
  auto cfg = config({"bigbird"});
  cfg.pattern.per_head = true;
  cfg.pattern.random_blocks = 2;
  const BlockLayout L = build(cfg, 16 * 96, false, 4);
  ASSERT_EQ(L.heads.size(), 4u);
  for (int h = 0; h < 4; ++h)
    for (int k = h + 1; k < 4; ++k) EXPECT_NE(L.heads[h].col_idx, L.heads[k].col_idx) << h << " vs " << k;
  // The deterministic part (window ±3, global 1) is in every head, and counts match.
  for (int h = 0; h < 4; ++h) {
    const auto rows = rows_of(L.heads[h]);
    for (int64_t r = 1; r < 96; ++r) {
      for (int64_t c = std::max<int64_t>(0, r - 3); c <= std::min<int64_t>(95, r + 3); ++c)
        EXPECT_TRUE(std::binary_search(rows[r].begin(), rows[r].end(), static_cast<int32_t>(c)));
      EXPECT_EQ(rows[r].size(), rows_of(L.heads[0])[r].size());
    }
  }
  // Head h of a per-head layout equals a shared layout built for head 0 only when h = 0.
  auto shared = cfg;
  shared.pattern.per_head = false;
  EXPECT_EQ(build(shared, 16 * 96, false, 4).heads.size(), 1u);
  EXPECT_EQ(build(shared, 16 * 96, false, 4).heads[0].col_idx, L.heads[0].col_idx);
  // Without the random pattern every head would be the same: one shared CSR.
  auto no_random = config({"local", "global"});
  no_random.pattern.per_head = true;
  EXPECT_EQ(build(no_random, 16 * 96, false, 4).heads.size(), 1u);
}

TEST(Budget, RealisedSparsityWithinOneBlockPerRow) {
  const std::vector<std::vector<std::string>> patterns{
      {"bigbird"}, {"local"}, {"strided"}, {"fixed", "global"}, {"dilated", "random"}};
  for (double s : {0.9, 0.95, 0.99})
    for (int64_t n : {64 * 1024, 64 * 2048 + 37, 64 * 4096})
      for (bool causal : {false, true})
        for (const auto& names : patterns) {
          auto cfg = config(names, s, 64);
          const BlockLayout L = build(cfg, n, causal);
          const int64_t nb = L.num_q_blocks;
          double target = 0;
          for (int64_t r = 0; r < nb; ++r) target += (1 - s) * static_cast<double>(causal ? r + 1 : nb);
          const std::string what = L.description + " N=" + std::to_string(n);
          EXPECT_TRUE(L.floor_note.empty()) << what << ": " << L.floor_note;
          EXPECT_LE(std::abs(static_cast<double>(L.active_blocks()) - target), static_cast<double>(nb)) << what;
          // And each row holds exactly its budget.
          const auto budgets = row_budgets(expand_patterns(cfg.pattern), cfg.pattern, nb, causal, s);
          const BlockCSR& csr = L.head(0);
          for (int64_t r = 0; r < nb; ++r) ASSERT_EQ(csr.row_ptr[r + 1] - csr.row_ptr[r], budgets[r]) << what;
        }
}

TEST(Budget, GrowsThePatternToFillTheBudget) {
  // local(window 1) gives 3 blocks a row; at 50% sparsity a row of 64 needs 32: the window widens
  // to the nearest 32 blocks.
  auto cfg = config({"local"}, 0.5);
  cfg.pattern.window = 1;
  const BlockLayout L = build(cfg, 16 * 64, false);
  const auto rows = rows_of(L.head(0));
  for (int64_t r = 0; r < 64; ++r) {
    ASSERT_EQ(rows[r].size(), 32u);
    const int64_t width = rows[r].back() - rows[r].front() + 1;
    EXPECT_EQ(width, 32) << "row " << r << " is not one contiguous window";
  }
  // dilated alone (rate 4) runs out of multiples: the nearest-first fill completes the budget.
  auto dil = config({"dilated"}, 0.5);
  dil.pattern.dilation_rates = {4};
  const BlockLayout D = build(dil, 16 * 64, true);
  const auto budgets = row_budgets(expand_patterns(dil.pattern), dil.pattern, 64, true, 0.5);
  for (int64_t r = 0; r < 64; ++r) {
    EXPECT_EQ(D.head(0).row_ptr[r + 1] - D.head(0).row_ptr[r], budgets[r]) << "row " << r;
    EXPECT_LE(std::abs(static_cast<double>(budgets[r]) - 0.5 * static_cast<double>(r + 1)), 1.0) << "row " << r;
  }
}

TEST(Budget, TruncatesConfiguredPatternsNearestFirst) {
  // bigbird with a wide window at 95%: rows take diagonal, sink, then the window nearest first
  // interleaved with random draws — never more than the budget.
  auto cfg = config({"bigbird"}, 0.95, 64);
  cfg.pattern.window = 40;
  const BlockLayout L = build(cfg, 64 * 512, false);
  const auto rows = rows_of(L.head(0));
  for (int64_t r = 100; r < 400; ++r) {
    const std::set<int32_t> got(rows[r].begin(), rows[r].end());
    // 0.05·512 = 25.6 blocks: 25 or 26 as the rounding remainder carries from row to row.
    EXPECT_TRUE(got.size() == 25u || got.size() == 26u) << got.size();
    EXPECT_LT(got.size(), 2u * 40u + 2u);
    for (int64_t d = 1; d <= 4; ++d) {
      EXPECT_TRUE(got.count(static_cast<int32_t>(r - d))) << r << " lacks " << r - d;
      EXPECT_TRUE(got.count(static_cast<int32_t>(r + d))) << r << " lacks " << r + d;
    }
  }
}

TEST(Budget, FloorNoteAtShortLength) {
  // 4096 tokens, block 64: 64 blocks; 99% would be 0.64 blocks a row, but diagonal + sink are 2.
  auto cfg = config({"bigbird"}, 0.99, 64);
  const BlockLayout L = build(cfg, 4096, false);
  ASSERT_FALSE(L.floor_note.empty());
  EXPECT_NE(L.floor_note.find("target sparsity 0.99"), std::string::npos) << L.floor_note;
  EXPECT_NE(L.floor_note.find("0.64 blocks per row"), std::string::npos) << L.floor_note;
  EXPECT_NE(L.floor_note.find("1 sink block give 2"), std::string::npos) << L.floor_note;
  char realised[32];
  std::snprintf(realised, sizeof realised, "realised %.3g", L.sparsity());
  EXPECT_NE(L.floor_note.find(realised), std::string::npos) << L.floor_note;
  // Every row holds exactly its floor: 2 blocks, the global row 64.
  EXPECT_EQ(L.active_blocks(), 63 * 2 + 64);
  EXPECT_LT(L.sparsity(), 0.99);
  // Causal: the first rows' share is under the floor; at 16384 tokens that costs more than half
  // a block per row.
  const BlockLayout C = build(cfg, 16384, true);
  EXPECT_NE(C.floor_note.find("1 sink block give 2: realised"), std::string::npos) << C.floor_note;
  EXPECT_NE(C.floor_note.find("needs ≤ 1.29 blocks per row"), std::string::npos) << C.floor_note;
  EXPECT_GT(C.sparsity(), 0.98);
  EXPECT_LT(C.sparsity(), 0.99);
  // With no floor binding (as configured, or a long enough sequence) there is no note.
  EXPECT_TRUE(build(config({"bigbird"}, 0.0, 64), 4096, false).floor_note.empty());
  EXPECT_TRUE(build(config({"bigbird"}, 0.9, 64), 64 * 1024, false).floor_note.empty());
}

TEST(LayoutCache, HitReturnsTheSamePointer) {
  layout_cache_clear();
  auto cfg = config({"bigbird"}, 0.9, 32);
  const auto before = layout_cache_stats();
  auto a = get_layout(cfg, 8192, 8, true);
  auto b = get_layout(cfg, 8192, 8, true);
  EXPECT_EQ(a.get(), b.get());
  const auto after = layout_cache_stats();
  EXPECT_EQ(after.misses - before.misses, 1);
  EXPECT_EQ(after.hits - before.hits, 1);
  // Any parameter that shapes the layout gives another entry.
  EXPECT_NE(get_layout(cfg, 8192, 8, false).get(), a.get());
  EXPECT_NE(get_layout(cfg, 8193, 8, true).get(), a.get());
  auto other = cfg;
  other.sparsity = 0.95;
  EXPECT_NE(get_layout(other, 8192, 8, true).get(), a.get());
  other = cfg;
  other.pattern.seed = 1;
  EXPECT_NE(get_layout(other, 8192, 8, true).get(), a.get());
  other = cfg;
  other.pattern.window = 4;
  EXPECT_NE(get_layout(other, 8192, 8, true).get(), a.get());
  // The head count matters only for per-head layouts.
  EXPECT_EQ(get_layout(cfg, 8192, 4, true).get(), a.get());
  other = cfg;
  other.pattern.per_head = true;
  auto p8 = get_layout(other, 8192, 8, true);
  EXPECT_EQ(p8->heads.size(), 8u);
  EXPECT_NE(get_layout(other, 8192, 4, true).get(), p8.get());
}

TEST(LayoutCache, BoundedLruEvictsTheOldest) {
  layout_cache_clear();
  set_layout_cache_limits(2, size_t(1) << 30);
  auto cfg = config({"local"}, 0.0, 32);
  auto a = get_layout(cfg, 1024, 1, false);
  auto b = get_layout(cfg, 2048, 1, false);
  EXPECT_EQ(get_layout(cfg, 1024, 1, false).get(), a.get());  // a is now the most recent
  auto c = get_layout(cfg, 4096, 1, false);                   // evicts b
  EXPECT_EQ(layout_cache_stats().entries, 2u);
  EXPECT_EQ(get_layout(cfg, 1024, 1, false).get(), a.get());
  EXPECT_NE(get_layout(cfg, 2048, 1, false).get(), b.get());  // rebuilt
  EXPECT_EQ(b->num_q_blocks, 64);                             // callers' copies stay valid
  set_layout_cache_limits(32, size_t(2) << 30);
  layout_cache_clear();
}

TEST(LayoutCache, ThreadsShareOneLayout) {
  layout_cache_clear();
  auto cfg = config({"bigbird"}, 0.95, 64);
  std::vector<std::shared_ptr<const BlockLayout>> got(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) threads.emplace_back([&, i] { got[i] = get_layout(cfg, 64 * 512, 1, true); });
  for (auto& t : threads) t.join();
  for (int i = 1; i < 8; ++i) EXPECT_EQ(got[i].get(), got[0].get());
}

TEST(LayoutScale, MillionTokensAt99PercentOneHead) {
  // N = 2^20, block 128: nb = 8192. Memory stays O(active blocks).
  auto cfg = config({"bigbird"}, 0.99, 128);
  for (bool causal : {false, true}) {
    const BlockLayout L = build_layout(cfg, 1 << 20, 1, causal);
    EXPECT_EQ(L.num_q_blocks, 8192);
    EXPECT_TRUE(L.floor_note.empty()) << L.floor_note;
    EXPECT_NEAR(L.sparsity(), 0.99, causal ? 0.0005 : 0.0002);
    EXPECT_LT(L.memory_bytes(), static_cast<size_t>(L.active_blocks()) * 13 + 8192 * 16 + 4096);
    EXPECT_EQ(L.head(0).col_ptr.size(), 8193u);
  }
}

TEST(LayoutPng, DrawsAndSummarises) {
  auto cfg = config({"bigbird"}, 0.95, 64);
  const BlockLayout L = build(cfg, 16384, true);
  const std::string path = ::testing::TempDir() + "/layout_test.png";
  EXPECT_EQ(write_layout_png(L, 0, path, 2048), 512);  // 256 blocks, 2 px a block
  std::ifstream f(path, std::ios::binary);
  char sig[8] = {};
  f.read(sig, 8);
  EXPECT_EQ(std::string(sig + 1, 3), "PNG");
  EXPECT_EQ(write_layout_png(L, 0, path, 100), 516);  // 256 blocks pooled 3 to a pixel (86), upscaled 6×
  EXPECT_THROW(write_layout_png(L, 0, "/nonexistent-dir/x.png"), Error);
  const std::string s = layout_summary(L);
  EXPECT_NE(s.find("nb 256"), std::string::npos) << s;
  char realised[64];
  std::snprintf(realised, sizeof realised, "realised sparsity: %.4f (target 0.9500)", L.sparsity());
  EXPECT_NE(s.find(realised), std::string::npos) << s;
  EXPECT_NEAR(L.sparsity(), 0.95, 256.0 / 32896);  // within one block per row
  EXPECT_NE(s.find("min 1"), std::string::npos) << s;
}
