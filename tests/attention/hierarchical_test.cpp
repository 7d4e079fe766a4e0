// The hierarchical backend against a slow f64 reference written here: pooled keys/values built
// by hand (one summary per P^l tokens, the ragged last one a mean over its real tokens), the
// explicit (query, key) visibility of the documented rule, one softmax; the gradients through
// the pooling are chained by hand. Plus: the rule covers every position exactly once, and a
// causal query never depends on a future token.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "attention/attention.h"
#include "attention/backends/hierarchical.h"
#include "attention_reference.h"
#include "common/gradcheck.h"

using namespace sparrow;
using namespace sparrow::attn;
namespace st = sparrow::testing;

namespace {

// The reference's own key arrangement: fine keys 0..N−1, then level 1's tokens, level 2's, …
// (no padding). Key `key` is level lev, token t, covering positions [first, last].
struct RefKey {
  int64_t level, token, first, last;
};

struct RefHierarchy {
  int64_t N, bs, pool, levels, window, nb;
  bool causal;
  std::vector<RefKey> keys;
  std::vector<int64_t> group;  // P^l

  RefHierarchy(int64_t N_, int64_t bs_, int64_t pool_, int64_t levels_, int64_t window_, bool causal_)
      : N(N_), bs(bs_), pool(pool_), levels(levels_), window(window_), nb((N_ + bs_ - 1) / bs_), causal(causal_) {
    int64_t grp = 1;
    for (int64_t l = 0; l <= levels; ++l, grp *= pool) {
      group.push_back(grp);
      for (int64_t t = 0; t * grp < N; ++t) keys.push_back({l, t, t * grp, std::min(N, (t + 1) * grp) - 1});
    }
  }
  // Fine blocks covered by level-l block c: [c·P^l, (c+1)·P^l) ∩ [0, nb).
  std::pair<int64_t, int64_t> span(int64_t l, int64_t c) const {
    return {c * group[l], std::min(nb, (c + 1) * group[l])};
  }
  // The documented rule, for query i and reference key `key`.
  bool visible(int64_t i, int64_t key) const {
    const RefKey& k = keys[key];
    const int64_t r = i / bs, lo = std::max<int64_t>(0, r - window), hi = causal ? r + 1 : std::min(nb, r + window + 1);
    auto meets_window = [&](std::pair<int64_t, int64_t> s) { return s.first < hi && s.second > lo; };
    const int64_t c = k.token / bs;  // the key's block at its level (a fine key's token is its position)
    const auto s = span(k.level, c);
    // The parent (a level-(l+1) block) must meet the window, unless this is the top level.
    const bool parent_meets = k.level == levels || meets_window(span(k.level + 1, c / pool));
    if (!parent_meets) return false;
    if (k.level == 0) return !causal || k.token <= i;  // fine: inside W, or the opened part of its parent
    if (meets_window(s)) return false;                 // a summary overlapping the window: opened instead
    return !causal || s.second <= lo;                  // causal: only summaries wholly before the window
  }
  // The reference's pooled keys [B, H, Nk, D] from x [B, H, N, D].
  Tensor pooled(const Tensor& x) const {
    const int64_t B = x.size(0), H = x.size(1), D = x.size(3), Nk = static_cast<int64_t>(keys.size());
    const std::vector<double> X = x.to_vector();
    std::vector<double> out(B * H * Nk * D, 0.0);
    for (int64_t bh = 0; bh < B * H; ++bh)
      for (int64_t key = 0; key < Nk; ++key) {
        const RefKey& k = keys[key];
        const double n = double(k.last - k.first + 1);
        for (int64_t p = k.first; p <= k.last; ++p)
          for (int64_t d = 0; d < D; ++d) out[(bh * Nk + key) * D + d] += X[(bh * N + p) * D + d] / n;
      }
    return from_vector(out, {B, H, Nk, D}, DType::F64);
  }
  // Gradient with respect to the pooled keys → gradient with respect to the fine keys.
  std::vector<double> unpool(const std::vector<double>& g, int64_t BH, int64_t D) const {
    const int64_t Nk = static_cast<int64_t>(keys.size());
    std::vector<double> out(BH * N * D, 0.0);
    for (int64_t bh = 0; bh < BH; ++bh)
      for (int64_t key = 0; key < Nk; ++key) {
        const RefKey& k = keys[key];
        const double n = double(k.last - k.first + 1);
        for (int64_t p = k.first; p <= k.last; ++p)
          for (int64_t d = 0; d < D; ++d) out[(bh * N + p) * D + d] += g[(bh * Nk + key) * D + d] / n;
      }
    return out;
  }
};

AttentionConfig hier_config(int64_t bs, int64_t levels, int64_t pool, int64_t window) {
  AttentionConfig cfg;
  cfg.backend = "hierarchical";
  cfg.block_size = bs;
  cfg.hierarchical = {levels, pool, window};
  return cfg;
}

}  // namespace

TEST(Hierarchical, RuleCoversEveryPositionExactlyOnce) {
  for (bool causal : {false, true})
    for (int64_t N : {37, 64, 101})
      for (int64_t levels : {1, 2, 3})
        for (int64_t window : {0, 1, 2}) {
          RefHierarchy ref(N, 4, 2, levels, window, causal);
          for (int64_t i = 0; i < N; ++i) {
            std::vector<int> count(N, 0);
            for (int64_t key = 0; key < static_cast<int64_t>(ref.keys.size()); ++key)
              if (ref.visible(i, key))
                for (int64_t p = ref.keys[key].first; p <= ref.keys[key].last; ++p) ++count[p];
            for (int64_t p = 0; p < N; ++p)
              ASSERT_EQ(count[p], (!causal || p <= i) ? 1 : 0)
                  << "N=" << N << " levels=" << levels << " window=" << window << " causal=" << causal << " query " << i
                  << " position " << p;
          }
        }
}

TEST(Hierarchical, MatchesPooledReferenceForwardAndGradients) {
  for (bool causal : {false, true})
    for (int64_t N : {32, 37})
      for (int64_t levels : {1, 2})
        for (int64_t window : {0, 1}) {
          SCOPED_TRACE("causal=" + std::to_string(causal) + " N=" + std::to_string(N) +
                       " levels=" + std::to_string(levels) + " window=" + std::to_string(window));
          const int64_t B = 2, H = 2, D = 5, bs = 4, pool = 2;
          HierarchicalAttention a(hier_config(bs, levels, pool, window));
          Generator g(11 + N + levels);
          Tensor q = randn({B, H, N, D}, g, DType::F64), k = randn({B, H, N, D}, g, DType::F64),
                 v = randn({B, H, N, D}, g, DType::F64), w = randn({B, H, N, D}, g, DType::F64);
          q.requires_grad_();
          k.requires_grad_();
          v.requires_grad_();
          Tensor o = a.forward({q, k, v, causal, 0});
          o.backward(w);

          RefHierarchy ref(N, bs, pool, levels, window, causal);
          const auto r = st::reference_attention(q, ref.pooled(k), ref.pooled(v), w, 1.0 / std::sqrt(double(D)),
                                                 [&](int64_t, int64_t i, int64_t j) { return ref.visible(i, j); });
          EXPECT_LT(st::rel_error(o.to_vector(), r.o), 1e-10) << "O";
          EXPECT_LT(st::rel_error(q.grad().to_vector(), r.dq), 1e-10) << "dQ";
          EXPECT_LT(st::rel_error(k.grad().to_vector(), ref.unpool(r.dk, B * H, D)), 1e-10) << "dK";
          EXPECT_LT(st::rel_error(v.grad().to_vector(), ref.unpool(r.dv, B * H, D)), 1e-10) << "dV";

          // The case exercises the summaries: some row lists a coarse block.
          const BlockCSR& csr = a.last_layout()->heads[0];
          EXPECT_TRUE(std::any_of(csr.col_idx.begin(), csr.col_idx.end(), [&](int32_t c) { return c >= ref.nb; }));
          const AttentionStats s = a.stats();
          EXPECT_EQ(s.backend, "hierarchical");
          EXPECT_EQ(s.seq_len, N);
          EXPECT_EQ(s.active_blocks, a.last_layout()->heads[0].nnz() * H);
          EXPECT_NEAR(s.density, double(s.active_blocks) / s.dense_blocks, 1e-12);
          EXPECT_GT(s.flops, 0);
        }
}

TEST(Hierarchical, FiniteDifferenceGradients) {
  for (bool causal : {false, true}) {
    Generator g(5);
    std::vector<Tensor> in{st::leaf({1, 2, 9, 3}, g), st::leaf({1, 2, 9, 3}, g), st::leaf({1, 2, 9, 3}, g)};
    HierarchicalAttention a(hier_config(2, 2, 2, 0));
    EXPECT_TRUE(st::gradcheck(
        [&](const std::vector<Tensor>& x) {
          return a.forward({x[0], x[1], x[2], causal, 0});
        },
        in));
  }
}

TEST(Hierarchical, CausalNeverSeesTheFuture) {
  const int64_t N = 23, D = 3;
  for (int64_t levels : {1, 2})
    for (int64_t window : {0, 1}) {
      HierarchicalAttention a(hier_config(2, levels, 2, window));
      Generator g(7);
      Tensor q = randn({1, 2, N, D}, g, DType::F64), k = randn({1, 2, N, D}, g, DType::F64),
             v = randn({1, 2, N, D}, g, DType::F64);
      const std::vector<double> base = a.forward({q, k, v, true, 0}).to_vector();
      for (bool perturb_k : {false, true})
        for (int64_t p = 0; p < N; ++p) {
          Tensor k2 = k.clone().detach(), v2 = v.clone().detach();
          Tensor& t = perturb_k ? k2 : v2;
          double* x = t.data<double>();
          for (int64_t h = 0; h < 2; ++h)
            for (int64_t d = 0; d < D; ++d) x[(h * N + p) * D + d] += 1.5;
          const std::vector<double> out = a.forward({q, k2, v2, true, 0}).to_vector();
          bool changed_at_p = false;
          for (int64_t h = 0; h < 2; ++h)
            for (int64_t i = 0; i < N; ++i)
              for (int64_t d = 0; d < D; ++d) {
                const size_t at = (h * N + i) * D + d;
                if (i < p) {
                  ASSERT_EQ(out[at], base[at]) << "query " << i << " changed by token " << p;
                }
                if (i == p && out[at] != base[at]) changed_at_p = true;
              }
          // (Query 0 sees only key 0, so its softmax weight is 1 whatever k_0 is.)
          if (!perturb_k || p > 0) {
            EXPECT_TRUE(changed_at_p) << "query " << p << " does not see its own token";
          }
        }
    }
}

TEST(Hierarchical, SparseAtLengthAndDenseWhenShort) {
  Generator g(3);
  // Long: a few blocks a row, far below dense.
  HierarchicalAttention a(hier_config(16, 2, 4, 2));
  Tensor x = randn({1, 2, 2048, 8}, g);
  a.forward({x, x, x, true, 0});
  const AttentionStats s = a.stats();
  EXPECT_LT(s.density, 0.2);
  EXPECT_EQ(a.last_geometry().levels, 2);
  // 128 fine blocks: a row lists at most window+1 + pool−1 fine blocks, pool−1 level-1 blocks
  // beside each of the (at most two) level-2 blocks its window meets, and 128/16 = 8 level-2 blocks.
  const BlockCSR& c = a.last_layout()->heads[0];
  for (int64_t r = 0; r < 128; ++r) EXPECT_LE(c.row_ptr[r + 1] - c.row_ptr[r], 6 + 6 + 8);
  // Short (fewer than pool fine blocks): no level is usable, so it is dense attention.
  Tensor y = randn({1, 1, 40, 8}, g);
  a.forward({y, y, y, true, 0});
  EXPECT_EQ(a.last_geometry().levels, 0);
  EXPECT_DOUBLE_EQ(a.stats().density, 1.0);
}

TEST(Hierarchical, RegisteredAndValidated) {
  EXPECT_EQ(make_attention(hier_config(8, 2, 4, 1))->name(), "hierarchical");
  EXPECT_THROW(HierarchicalAttention(hier_config(8, 0, 4, 1)), Error);
  EXPECT_THROW(HierarchicalAttention(hier_config(8, 2, 1, 1)), Error);
  EXPECT_THROW(HierarchicalAttention(hier_config(8, 2, 4, -1)), Error);
  HierarchicalAttention a(hier_config(8, 2, 4, 1));
  Generator g(1);
  Tensor q = randn({1, 2, 16, 4}, g), k = randn({1, 2, 17, 4}, g);
  EXPECT_THROW(a.forward({q, k, k, true, 0}), Error);
}
