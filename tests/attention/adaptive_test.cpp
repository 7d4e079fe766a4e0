// The adaptive backend: its selection equals a top-k computed here from pooled q·k (f64), it
// always holds the diagonal and the sinks and never a future block, its realised sparsity
// tracks the target, and its output equals the explicit dense reference under the selected
// layout's element mask (f64, forward and the three gradients; bf16 within bf16 tolerance).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "attention/attention.h"
#include "attention/backends/adaptive.h"
#include "attention_reference.h"
#include "common/gradcheck.h"

using namespace sparrow;
using namespace sparrow::attn;
namespace st = sparrow::testing;

namespace {

AttentionConfig adaptive_config(int64_t bs, int64_t top_k, int64_t sinks, double sparsity) {
  AttentionConfig cfg;
  cfg.backend = "adaptive";
  cfg.block_size = bs;
  cfg.sparsity = sparsity;
  cfg.adaptive = {top_k, sinks};
  return cfg;
}

// Block means of x [B, H, N, D] in f64: [bh][block][d].
std::vector<std::vector<std::vector<double>>> block_means_f64(const Tensor& x, int64_t bs) {
  const int64_t BH = x.size(0) * x.size(1), N = x.size(2), D = x.size(3), nb = (N + bs - 1) / bs;
  const std::vector<double> X = x.to_vector();
  std::vector<std::vector<std::vector<double>>> m(BH, std::vector<std::vector<double>>(nb, std::vector<double>(D, 0)));
  for (int64_t bh = 0; bh < BH; ++bh)
    for (int64_t c = 0; c < nb; ++c) {
      const int64_t n = std::min(bs, N - c * bs);
      for (int64_t p = c * bs; p < c * bs + n; ++p)
        for (int64_t d = 0; d < D; ++d) m[bh][c][d] += X[(bh * N + p) * D + d] / double(n);
    }
  return m;
}

// Row r of head bh as the test computes it: the forced blocks, then the best `extra` by score
// from a full sort (ties to the lower index).
std::vector<int32_t> expected_row(const std::vector<std::vector<double>>& qm,
                                  const std::vector<std::vector<double>>& km, int64_t r, bool causal, int64_t sinks,
                                  int64_t extra) {
  const int64_t nb = static_cast<int64_t>(km.size()), range = causal ? r + 1 : nb;
  std::vector<int32_t> row;
  for (int64_t c = 0; c < std::min(sinks, range); ++c) row.push_back(int32_t(c));
  if (r >= sinks) row.push_back(int32_t(r));
  std::vector<std::pair<double, int32_t>> rest;
  for (int64_t c = 0; c < range; ++c) {
    if (c < sinks || c == r) continue;
    double s = 0;
    const auto& qr = qm[causal && r > 0 ? r - 1 : r];  // causal: the previous block's queries choose
    for (size_t d = 0; d < qr.size(); ++d) s += qr[d] * km[c][d];
    rest.push_back({-s, int32_t(c)});
  }
  std::sort(rest.begin(), rest.end());
  for (int64_t i = 0; i < extra && i < static_cast<int64_t>(rest.size()); ++i) row.push_back(rest[i].second);
  std::sort(row.begin(), row.end());
  return row;
}

std::vector<int32_t> csr_row(const BlockCSR& c, int64_t r) {
  return {c.col_idx.begin() + c.row_ptr[r], c.col_idx.begin() + c.row_ptr[r + 1]};
}

int64_t forced(int64_t r, int64_t range, int64_t sinks) {
  return std::min(sinks, range) + (r >= std::min(sinks, range) ? 1 : 0);
}

// Runs the backend on [B, H, N, D] and compares O, dQ, dK, dV per batch element with the
// reference under the selected layout. Returns the largest relative error.
double compare_with_reference(AdaptiveAttention& a, int64_t B, int64_t H, int64_t N, int64_t D, bool causal, DType dt,
                              uint64_t seed) {
  Generator g(seed);
  Tensor q = randn({B, H, N, D}, g, dt), k = randn({B, H, N, D}, g, dt), v = randn({B, H, N, D}, g, dt),
         w = randn({B, H, N, D}, g, dt);
  q.requires_grad_();
  k.requires_grad_();
  v.requires_grad_();
  Tensor o = a.forward({q, k, v, causal, 0});
  o.backward(w);
  auto L = a.last_layout();
  const int64_t bs = L->block_size;
  double worst = 0;
  for (int64_t b = 0; b < B; ++b) {
    auto part = [b](const Tensor& t) { return t.slice(0, b, b + 1); };
    const auto r = st::reference_attention(
        part(q), part(k), part(v), part(w), 1.0 / std::sqrt(double(D)), [&](int64_t h, int64_t i, int64_t j) {
          return st::csr_has(L->head(b * H + h), i / bs, j / bs) && (!causal || j <= i);
        });
    worst =
        std::max({worst, st::rel_error(part(o).to_vector(), r.o), st::rel_error(part(q.grad()).to_vector(), r.dq),
                  st::rel_error(part(k.grad()).to_vector(), r.dk), st::rel_error(part(v.grad()).to_vector(), r.dv)});
  }
  return worst;
}

}  // namespace

TEST(Adaptive, SelectionEqualsDirectTopK) {
  for (bool causal : {false, true})
    for (int64_t sinks : {0, 1, 2}) {
      SCOPED_TRACE("causal=" + std::to_string(causal) + " sinks=" + std::to_string(sinks));
      const int64_t B = 2, H = 2, N = 70, D = 6, bs = 8, nb = 9, top_k = 4;
      Generator g(21 + sinks);
      Tensor q = randn({B, H, N, D}, g, DType::F64), k = randn({B, H, N, D}, g, DType::F64);
      const BlockLayout L = select_adaptive_layout(q, k, {top_k, sinks}, 0.0, bs, causal);
      ASSERT_EQ(L.heads.size(), size_t(B * H));
      const auto qm = block_means_f64(q, bs), km = block_means_f64(k, bs);
      for (int64_t bh = 0; bh < B * H; ++bh)
        for (int64_t r = 0; r < nb; ++r) {
          const int64_t range = causal ? r + 1 : nb, f = forced(r, range, sinks);
          const int64_t want = std::min(range, std::max(top_k, f));
          EXPECT_EQ(csr_row(L.heads[bh], r), expected_row(qm[bh], km[bh], r, causal, sinks, want - f))
              << "head " << bh << " row " << r;
        }
    }
}

TEST(Adaptive, BudgetRowsAreTheirTopK) {
  // At a target sparsity every row holds its forced blocks plus the best-scoring others, and
  // the row counts sum to the target within a block (no floor binds non-causally here).
  const int64_t B = 1, H = 3, N = 500, D = 8, bs = 10, nb = 50;
  const double s = 0.83;
  Generator g(4);
  Tensor q = randn({B, H, N, D}, g, DType::F64), k = randn({B, H, N, D}, g, DType::F64);
  for (bool causal : {false, true}) {
    const BlockLayout L = select_adaptive_layout(q, k, {0, 1}, s, bs, causal);
    const auto qm = block_means_f64(q, bs), km = block_means_f64(k, bs);
    double target = 0;
    for (int64_t r = 0; r < nb; ++r) target += (1 - s) * (causal ? r + 1 : nb);
    for (int64_t h = 0; h < H; ++h) {
      int64_t total = 0;
      for (int64_t r = 0; r < nb; ++r) {
        const std::vector<int32_t> row = csr_row(L.heads[h], r);
        const int64_t range = causal ? r + 1 : nb, f = forced(r, range, 1);
        EXPECT_EQ(row, expected_row(qm[h], km[h], r, causal, 1, int64_t(row.size()) - f)) << "row " << r;
        total += static_cast<int64_t>(row.size());
      }
      if (!causal) {
        EXPECT_LE(std::abs(double(total) - target), 1.0);
      } else {
        EXPECT_GE(double(total), target - 1.0);  // the floor only adds
      }
    }
  }
}

TEST(Adaptive, DiagonalAndSinksAlwaysAndNoFutureBlock) {
  for (bool causal : {false, true})
    for (int64_t sinks : {0, 1, 3}) {
      Generator g(9);
      Tensor q = randn({2, 2, 333, 4}, g), k = randn({2, 2, 333, 4}, g);
      const int64_t nb = (333 + 15) / 16;
      const BlockLayout L = select_adaptive_layout(q, k, {0, sinks}, 0.95, 16, causal);
      for (const BlockCSR& c : L.heads)
        for (int64_t r = 0; r < nb; ++r) {
          const std::vector<int32_t> row = csr_row(c, r);
          EXPECT_TRUE(std::is_sorted(row.begin(), row.end()));
          EXPECT_TRUE(std::adjacent_find(row.begin(), row.end()) == row.end()) << "duplicate block";
          EXPECT_TRUE(std::binary_search(row.begin(), row.end(), int32_t(r))) << "row " << r << " lacks its diagonal";
          for (int64_t s = 0; s < std::min(sinks, causal ? r + 1 : nb); ++s)
            EXPECT_TRUE(std::binary_search(row.begin(), row.end(), int32_t(s))) << "row " << r << " lacks sink " << s;
          if (causal) {
            EXPECT_LE(row.back(), r) << "row " << r << " selected a future block";
          }
        }
    }
}

TEST(Adaptive, CausalOutputNeverDependsOnLaterTokens) {
  // Changing the queries, keys and values from position p on leaves every output before p as it
  // was: the selection, not just the attention, sees only the past.
  // 16 blocks at 50%: rows past the first few choose among several earlier blocks.
  const int64_t B = 1, H = 2, N = 256, D = 8, bs = 16;
  for (int64_t p : {1, 100, 167, 250}) {
    Generator g(5);
    Tensor q = randn({B, H, N, D}, g), k = randn({B, H, N, D}, g), v = randn({B, H, N, D}, g);
    Tensor q2 = q.clone(), k2 = k.clone(), v2 = v.clone();
    Generator noise(6);
    for (Tensor* t : {&q2, &k2, &v2}) {
      Tensor tail = t->slice(2, p, N);
      copy_(tail, randn(tail.shape(), noise));
    }
    AdaptiveAttention a(adaptive_config(bs, 0, 0, 0.5)), b(adaptive_config(bs, 0, 0, 0.5));
    const Tensor oa = a.forward({q, k, v, true}), ob = b.forward({q2, k2, v2, true});
    EXPECT_EQ(oa.slice(2, 0, p).to_vector(), ob.slice(2, 0, p).to_vector()) << "changed from position " << p;
  }
}

TEST(Adaptive, MatchesDenseReferenceWithItsMaskF64) {
  for (bool causal : {false, true})
    for (int64_t top_k : {0, 3}) {
      SCOPED_TRACE("causal=" + std::to_string(causal) + " top_k=" + std::to_string(top_k));
      AdaptiveAttention a(adaptive_config(8, top_k, 1, 0.6));
      EXPECT_LT(compare_with_reference(a, 2, 3, 77, 16, causal, DType::F64, 31), 1e-10);
      EXPECT_LT(a.stats().density, 1.0);
    }
}

TEST(Adaptive, RunsInF32AndBf16) {
  for (DType dt : {DType::F32, DType::BF16})
    for (bool causal : {false, true}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + (causal ? " causal" : ""));
      AdaptiveAttention a(adaptive_config(16, 0, 1, 0.7));
      // bf16: inputs, O and the gradients are rounded to bf16 (8 bits of mantissa).
      EXPECT_LT(compare_with_reference(a, 1, 2, 130, 32, causal, dt, 41), dt == DType::BF16 ? 2e-2 : 1e-5);
    }
}

TEST(Adaptive, RealisedSparsityNearTarget) {
  for (bool causal : {false, true})
    for (double s : {0.5, 0.9, 0.95}) {
      AdaptiveAttention a(adaptive_config(16, 0, 1, s));
      Generator g(6);
      Tensor x = randn({1, 4, 2048, 8}, g);
      a.forward({x, x, x, causal, 0});
      const AttentionStats stats = a.stats();
      EXPECT_EQ(stats.backend, "adaptive");
      EXPECT_DOUBLE_EQ(stats.target_sparsity, s);
      EXPECT_NEAR(stats.density, double(stats.active_blocks) / stats.dense_blocks, 1e-12);
      // 128 blocks: non-causal rows hit the budget to within a block in total; causal early
      // rows are held up by the floor (diagonal + sink), a few percent at most.
      EXPECT_NEAR(stats.density, 1 - s, causal ? 0.03 : 1e-3) << "target " << s << (causal ? " causal" : "");
      EXPECT_GE(stats.density, 1 - s - 1e-3);
    }
}

TEST(Adaptive, ForwardFollowsTheScheduleByStepAndValidation) {
  AttentionConfig cfg = adaptive_config(8, 0, 1, 0.1);
  cfg.schedule = {0.5, 0.9, 3, 0, "step"};
  auto a = make_attention(cfg);
  EXPECT_EQ(a->name(), "adaptive");
  Generator g(2);
  Tensor x = randn({1, 2, 256, 8}, g);
  std::vector<double> density;
  for (int64_t step = 0; step < 6; ++step) {
    a->forward({x, x, x, true, step});
    EXPECT_EQ(a->stats().target_sparsity, cfg.schedule.at(step)) << "step " << step;
    density.push_back(a->stats().density);
  }
  EXPECT_EQ(density[0], density[2]);  // 0.5 before step 3
  EXPECT_LT(density[3], density[2]);  // 0.9 from step 3 on
  EXPECT_EQ(density[3], density[5]);
  AttentionConfig bad = cfg;
  bad.schedule.to = 1.0;
  EXPECT_THROW(make_attention(bad), Error);
  EXPECT_THROW(AdaptiveAttention(adaptive_config(8, 0, 1, 1.0)), Error);
  EXPECT_THROW(AdaptiveAttention(adaptive_config(8, -1, 1, 0.5)), Error);
  EXPECT_THROW(AdaptiveAttention(adaptive_config(8, 0, -1, 0.5)), Error);
}
