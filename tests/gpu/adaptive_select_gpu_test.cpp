// Adaptive selection on the GPU (attention/kernels/cuda/adaptive_select.h) against the host
// selection (select_adaptive_layout_from_means): the same CSR entry for entry and the same
// transpose, over ragged lengths, causal and not, sparsities, top_k and sink counts; the adaptive
// backend with the device selection gives the host selection's output and gradients; and its
// forward can be captured in a CUDA graph whose replays follow new inputs. Skips without a GPU.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "attention/attention.h"
#include "attention/backends/adaptive.h"
#include "common/gradcheck.h"
#include "framework/core/rng.h"
#include "framework/ops/ops.h"
#ifdef SPARROW_WITH_CUDA
#include "attention/kernels/cuda/adaptive_select.h"
#include "framework/cuda/graph.h"
#include "framework/cuda/runtime.h"
#endif

using namespace sparrow;
using namespace sparrow::attn;

#ifdef SPARROW_WITH_CUDA
namespace {

const Device kGpu = Device::cuda(0);

// Runs body with SPARROW_ADAPTIVE_SELECT set to `where`.
template <class F>
auto with_selection(const char* where, F body) {
  setenv("SPARROW_ADAPTIVE_SELECT", where, 1);
  auto r = body();
  unsetenv("SPARROW_ADAPTIVE_SELECT");
  return r;
}

}  // namespace

TEST(AdaptiveSelectGpu, DeviceLayoutEqualsTheHostSelection) {
  SPARROW_REQUIRE_GPU();
  int cases = 0;
  for (int64_t N : {64, 455, 1000, 4096})
    for (int64_t bs : {64, 128})
      for (bool causal : {false, true})
        for (double s : {0.5, 0.9, 0.95})
          for (int64_t top_k : {0, 3})
            for (int64_t sinks : {0, 1, 2}) {
              const int64_t B = 2, H = 3, D = 16, nb = (N + bs - 1) / bs;
              AdaptiveConfig ac{top_k, sinks};
              SCOPED_TRACE(::testing::Message() << "N=" << N << " block " << bs << (causal ? " causal" : "")
                                                << " s=" << s << " top_k=" << top_k << " sinks=" << sinks);
              Generator g(700 + cases);
              const Tensor qbar = randn({B, H, nb, D}, g, DType::F64), kbar = randn({B, H, nb, D}, g, DType::F64);
              const BlockLayout host = select_adaptive_layout_from_means(qbar, kbar, N, ac, s, bs, causal);
              const std::vector<int64_t> budgets = adaptive_row_budgets(ac, s, nb, causal);
              auto dev = attn::cuda::select_layout_on_device(scoring_query_means(qbar.to(kGpu), causal), kbar.to(kGpu),
                                                             budgets, sinks, causal, bs);
              const attn::cuda::HostCsr got = attn::cuda::copy_to_host(*dev);
              ASSERT_EQ(got.heads, B * H);
              ASSERT_EQ(got.nqb, nb);
              ASSERT_EQ(got.block, bs);
              // The host layout's heads, concatenated with each head's entries biased like the device's.
              std::vector<int64_t> row_ptr, col_ptr;
              std::vector<int32_t> col_idx, row_idx;
              for (const BlockCSR& c : host.heads) {
                const int64_t base = static_cast<int64_t>(col_idx.size());
                for (int64_t x : c.row_ptr) row_ptr.push_back(base + x);
                for (int64_t x : c.col_ptr) col_ptr.push_back(base + x);
                col_idx.insert(col_idx.end(), c.col_idx.begin(), c.col_idx.end());
                row_idx.insert(row_idx.end(), c.row_idx.begin(), c.row_idx.end());
              }
              ASSERT_EQ(got.row_ptr, row_ptr);
              ASSERT_EQ(got.col_idx, col_idx);
              ASSERT_EQ(got.col_ptr, col_ptr);
              ASSERT_EQ(got.row_idx, row_idx);
              ++cases;
            }
  std::printf("[   INFO   ] %d selections compared\n", cases);
}

TEST(AdaptiveSelectGpu, BackendOutputAndGradientsEqualTheHostSelections) {
  SPARROW_REQUIRE_GPU();
  for (bool causal : {false, true})
    for (DType dt : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(std::string(causal ? "causal " : "") + dtype_name(dt));
      AttentionConfig cfg;
      cfg.backend = "adaptive";
      cfg.block_size = 64;
      cfg.sparsity = 0.8;
      cfg.adaptive = {0, 1};
      const int64_t B = 2, H = 2, N = 1000, D = 64;
      Generator g(5);
      auto make = [&] { return randn({B, H, N, D}, g, DType::F32).to(dt).to(kGpu); };
      const Tensor q = make(), k = make(), v = make(), w = make();
      auto run = [&] {
        Tensor qi = q.detach().requires_grad_(), ki = k.detach().requires_grad_(), vi = v.detach().requires_grad_();
        auto a = make_attention(cfg);
        Tensor o = a->forward({qi, ki, vi, causal, 0});
        sum(mul(o, w)).backward();
        return std::vector<std::vector<double>>{o.to_vector(),
                                                qi.grad().to_vector(),
                                                ki.grad().to_vector(),
                                                vi.grad().to_vector(),
                                                {static_cast<double>(a->stats().active_blocks)}};
      };
      const auto on_device = with_selection("device", run), on_host = with_selection("host", run);
      const char* names[5] = {"O", "dQ", "dK", "dV", "active blocks"};
      for (int t = 0; t < 5; ++t) EXPECT_EQ(on_device[t], on_host[t]) << names[t];
    }
}

TEST(AdaptiveSelectGpu, ForwardIsCapturedAndReplaysFollowTheInputs) {
  SPARROW_REQUIRE_GPU();
  AttentionConfig cfg;
  cfg.backend = "adaptive";
  cfg.block_size = 64;
  cfg.sparsity = 0.9;
  const int64_t B = 1, H = 2, N = 2048, D = 64;
  Generator g(9);
  Tensor q = zeros({B, H, N, D}, DType::BF16, kGpu), k = zeros({B, H, N, D}, DType::BF16, kGpu),
         v = zeros({B, H, N, D}, DType::BF16, kGpu), out = zeros({B, H, N, D}, DType::BF16, kGpu);
  auto fill = [&](uint64_t seed) {
    Generator r(seed);
    copy_(q, randn({B, H, N, D}, r, DType::F32));
    copy_(k, randn({B, H, N, D}, r, DType::F32));
    copy_(v, randn({B, H, N, D}, r, DType::F32));
  };
  setenv("SPARROW_ADAPTIVE_SELECT", "device", 1);
  auto a = make_attention(cfg);
  fill(1);
  Tensor eager1 = a->forward({q, k, v, true, 0});  // warms the row-pointer cache (a host upload)
  sparrow::cuda::Graph graph;
  graph.capture([&] { copy_(out, a->forward({q, k, v, true, 0})); });
  ASSERT_TRUE(graph.captured());
  for (uint64_t seed : {1, 2, 3}) {
    fill(seed);
    graph.replay();
    Tensor eager = a->forward({q, k, v, true, 0});
    EXPECT_EQ(out.to_vector(), eager.to_vector()) << "replay with inputs " << seed;
  }
  unsetenv("SPARROW_ADAPTIVE_SELECT");
  EXPECT_EQ(eager1.dtype(), DType::BF16);
}

#endif
