#include "attention/backends/adaptive.h"
#include "attention/backends/block_pooling.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <string>

#include "attention/backends/block_flops.h"
#include "attention/kernels/block_attention.h"
#ifdef SPARROW_WITH_CUDA
#include "attention/kernels/cuda/adaptive_select.h"
#endif
#include "attention/ring/context_parallel.h"
#include "framework/autograd/node.h"
#include "framework/core/profile.h"
#include "framework/ops/ops.h"

namespace sparrow::attn {
namespace {

// Forced blocks of row r: the diagonal and the sinks c < sink_blocks inside the row's range.
int64_t forced_count(const AdaptiveConfig& ac, int64_t r, int64_t range) {
  const int64_t sinks = std::min(ac.sink_blocks, range);
  return sinks + (r >= sinks ? 1 : 0);
}

// For CUDA inputs the selection runs on the GPU (kernels/cuda/adaptive_select.h: no host round
// trip, so the step can be captured in a CUDA graph; 19× faster forward at 64K on an H100,
// bench/RESULTS.md); SPARROW_ADAPTIVE_SELECT=host moves it to the host. Verified on an H100:
// AdaptiveSelectGpu.* (tests/gpu/adaptive_select_gpu_test.cpp) and the GPU suite.
constexpr bool kDeviceSelectionByDefault = true;

bool select_on_device(const AttentionCall& call) {
  if (!call.q.is_cuda() || call.context != nullptr) return false;
  const char* e = std::getenv("SPARROW_ADAPTIVE_SELECT");
  return e != nullptr ? std::string(e) == "device" : kDeviceSelectionByDefault;
}

}  // namespace

Tensor scoring_query_means(const Tensor& qbar, bool causal) {
  const int64_t nb = qbar.size(2);
  if (!causal || nb <= 1) return qbar;
  return concat({slice(qbar, 2, 0, 1), slice(qbar, 2, 0, nb - 1)}, 2);
}

std::vector<int64_t> adaptive_row_budgets(const AdaptiveConfig& ac, double sparsity, int64_t nb, bool causal) {
  std::vector<int64_t> budgets(nb);
  double carry = 0;  // target − taken over the rows so far that neither the floor nor k ≥ 1 bound
  for (int64_t r = 0; r < nb; ++r) {
    const int64_t range = causal ? r + 1 : nb, floor = forced_count(ac, r, range);
    int64_t k;
    if (ac.top_k > 0) {
      k = std::min(range, ac.top_k);
    } else {
      const double target = (1.0 - sparsity) * static_cast<double>(range);
      k = std::clamp<int64_t>(std::llround(target + carry), 1, range);
      if (k >= floor) carry += target - static_cast<double>(k);
    }
    budgets[r] = std::max(k, floor);
  }
  return budgets;
}

std::array<Tensor, 2> adaptive_block_means(const Tensor& q, const Tensor& k, int64_t block_size) {
  NoGradGuard no_grad;  // the selection is not differentiable
  const DType ct = q.dtype() == DType::F64 ? DType::F64 : DType::F32;
  return {pool_means(q.dtype() == ct ? q.detach() : cast(q.detach(), ct), block_size),
          pool_means(k.dtype() == ct ? k.detach() : cast(k.detach(), ct), block_size)};
}

BlockLayout select_adaptive_layout(const Tensor& q, const Tensor& k, const AdaptiveConfig& ac, double sparsity,
                                   int64_t block_size, bool causal) {
  const auto [qbar, kbar] = adaptive_block_means(q, k, block_size);
  return select_adaptive_layout_from_means(qbar, kbar, q.size(2), ac, sparsity, block_size, causal);
}

BlockLayout select_adaptive_layout_from_means(Tensor qbar, const Tensor& kbar, int64_t N, const AdaptiveConfig& ac,
                                              double sparsity, int64_t block_size, bool causal) {
  const int64_t B = qbar.size(0), H = qbar.size(1), BH = B * H;
  const int64_t nb = (N + block_size - 1) / block_size;
  SPARROW_CHECK(qbar.size(2) == nb && kbar.shape() == qbar.shape(), "adaptive selection: block means ",
                shape_str(qbar.shape()), " and ", shape_str(kbar.shape()), " for ", nb, " blocks");
  const std::vector<int64_t> budget = adaptive_row_budgets(ac, sparsity, nb, causal);

  BlockLayout L;
  L.seq_len = N;
  L.block_size = block_size;
  L.num_q_blocks = nb;
  L.num_k_blocks = nb;
  L.causal = causal;
  L.target_sparsity = ac.top_k > 0 ? 0.0 : sparsity;
  L.description = "adaptive(" +
                  (ac.top_k > 0 ? "top_k=" + std::to_string(ac.top_k) : "sparsity " + std::to_string(sparsity)) +
                  ", sink_blocks=" + std::to_string(ac.sink_blocks) + ")";
  std::vector<std::vector<std::vector<int32_t>>> rows(BH, std::vector<std::vector<int32_t>>(nb));

  {
    NoGradGuard no_grad;
    // Causal: row r is scored by the previous block's query mean, q̄_{r−1} (row 0 has nothing to
    // choose). q̄_r would mix in the queries of the block's later positions, so the blocks a
    // position attends to — and its output — would depend on tokens after it.
    qbar = scoring_query_means(qbar, causal);
    // Query-block chunks of at most ~4M scores over all batch·heads.
    const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(1, BH * nb));
    std::vector<int32_t> cand;
    for (int64_t r0 = 0; r0 < nb; r0 += chunk) {
      const int64_t r1 = std::min(nb, r0 + chunk), rc = r1 - r0;
      const std::vector<double> s = matmul(slice(qbar, 2, r0, r1), kbar, false, true).to_vector();  // [B,H,rc,nb]
      for (int64_t bh = 0; bh < BH; ++bh)
        for (int64_t r = r0; r < r1; ++r) {
          const double* score = s.data() + (bh * rc + (r - r0)) * nb;
          const int64_t range = causal ? r + 1 : nb, sinks = std::min(ac.sink_blocks, range);
          std::vector<int32_t>& row = rows[bh][r];
          for (int64_t c = 0; c < sinks; ++c) row.push_back(static_cast<int32_t>(c));
          if (r >= sinks) row.push_back(static_cast<int32_t>(r));
          const int64_t more = budget[r] - static_cast<int64_t>(row.size());
          if (more > 0) {
            cand.clear();
            for (int64_t c = sinks; c < range; ++c)
              if (c != r) cand.push_back(static_cast<int32_t>(c));
            const auto better = [score](int32_t a, int32_t b) {
              return score[a] > score[b] || (score[a] == score[b] && a < b);
            };
            std::partial_sort(cand.begin(), cand.begin() + more, cand.end(), better);
            row.insert(row.end(), cand.begin(), cand.begin() + more);
          }
          std::sort(row.begin(), row.end());
        }
    }
  }

  L.heads.resize(BH);
  for (int64_t bh = 0; bh < BH; ++bh) {
    BlockCSR& c = L.heads[bh];
    c.row_ptr.assign(1, 0);
    for (int64_t r = 0; r < nb; ++r) {
      c.col_idx.insert(c.col_idx.end(), rows[bh][r].begin(), rows[bh][r].end());
      c.row_ptr.push_back(static_cast<int64_t>(c.col_idx.size()));
    }
    c.build_transpose(nb);
  }
  return L;
}

AdaptiveAttention::AdaptiveAttention(const AttentionConfig& cfg) : cfg_(cfg) {
  SPARROW_CHECK(cfg.block_size > 0, "adaptive attention: block_size ", cfg.block_size, " (must be > 0)");
  SPARROW_CHECK(cfg.adaptive.top_k >= 0, "adaptive attention: top_k ", cfg.adaptive.top_k,
                " (must be ≥ 0; 0 takes k from the sparsity)");
  SPARROW_CHECK(cfg.adaptive.sink_blocks >= 0, "adaptive attention: sink_blocks ", cfg.adaptive.sink_blocks,
                " (must be ≥ 0)");
  SPARROW_CHECK(cfg.softmax_scale >= 0, "adaptive attention: softmax_scale ", cfg.softmax_scale,
                " (0 means 1/sqrt(D))");
  check_sparsity_targets("adaptive attention", cfg);
  stats_.backend = "adaptive";
  stats_.target_sparsity = cfg_.sparsity_at(0);
}

Tensor AdaptiveAttention::forward(const AttentionCall& call) {
  SPARROW_PROFILE_OP("attention adaptive");
  const char* op = "adaptive attention";
  check_qkv(op, call);
  check_float(op, call.q);
  const int64_t B = call.q.size(0), H = call.q.size(1), D = call.q.size(3);
  // Under context parallelism the selection is the whole sequence's (from every rank's block
  // means: adaptive_context_parallel.cpp), and ring attention runs it.
  const int64_t N = call.context ? call.context->seq_len : call.q.size(2);
  const double sparsity = cfg_.sparsity_at(call.step);
  int64_t gathered = 0;
  const auto [qbar, kbar] = call.context
                                ? gather_adaptive_block_means(call.q, call.k, *call.context, cfg_.block_size, &gathered)
                                : adaptive_block_means(call.q, call.k, cfg_.block_size);
  const bool on_device = select_on_device(call);
  if (on_device) return forward_selected_on_device(call, qbar, kbar, sparsity);
  layout_ = std::make_shared<const BlockLayout>(
      select_adaptive_layout_from_means(qbar, kbar, N, cfg_.adaptive, sparsity, cfg_.block_size, call.causal));

  // Batch folded into heads: one CSR per (batch, head).
  const Shape folded{1, B * H, call.q.size(2), D};
  Tensor out;
  if (call.context) {
    AttentionCall f = call;
    f.q = reshape(call.q, folded);
    f.k = reshape(call.k, folded);
    f.v = reshape(call.v, folded);
    out = ring_.run(f, layout_, cfg_.softmax_scale);
  } else {
    BlockAttentionArgs args;
    args.layout = layout_.get();
    args.layout_owner = layout_;
    args.block_size = cfg_.block_size;
    args.causal = call.causal;
    args.scale = cfg_.softmax_scale;
    out = block_attention(reshape(call.q, folded), reshape(call.k, folded), reshape(call.v, folded), args);
  }
  out = reshape(out, call.q.shape());

  const BlockLayout& L = *layout_;
  stats_ = AttentionStats{};
  stats_.backend = "adaptive";
  stats_.seq_len = N;
  double flops = 0;
  for (const BlockCSR& c : L.heads) {
    stats_.active_blocks += c.nnz();
    flops += layout_head_flops(c, N, N, L.block_size, D);
  }
  stats_.dense_blocks = L.dense_blocks() * B * H;
  stats_.density = stats_.dense_blocks ? static_cast<double>(stats_.active_blocks) / stats_.dense_blocks : 0.0;
  stats_.target_sparsity = cfg_.adaptive.top_k > 0 ? 0.0 : sparsity;
  stats_.flops = flops;
  if (call.context) {
    ring_.add_to(stats_);
    stats_.ring_collective_bytes = gathered;
  }
  return out;
}

// The device path: the same selection on the GPU (no host wait), attention over it, and the stats
// from the budgets (the active blocks exactly; FLOPs counting every selected pair at full block
// width, which overcounts by the ragged last key block's missing columns where a row selected it).
Tensor AdaptiveAttention::forward_selected_on_device(const AttentionCall& call, const Tensor& qbar, const Tensor& kbar,
                                                     double sparsity) {
#ifdef SPARROW_WITH_CUDA
  const int64_t B = call.q.size(0), H = call.q.size(1), N = call.q.size(2), D = call.q.size(3);
  const int64_t bs = cfg_.block_size, nb = (N + bs - 1) / bs;
  const std::vector<int64_t> budgets = adaptive_row_budgets(cfg_.adaptive, sparsity, nb, call.causal);
  std::shared_ptr<const cuda::DeviceLayout> dev;
  {
    NoGradGuard no_grad;
    dev = cuda::select_layout_on_device(scoring_query_means(qbar, call.causal), kbar, budgets,
                                        cfg_.adaptive.sink_blocks, call.causal, bs);
  }
  layout_ = nullptr;  // the layout lives on the device
  const Shape folded{1, B * H, N, D};
  BlockAttentionArgs args;
  args.device_layout = dev;
  args.block_size = bs;
  args.causal = call.causal;
  args.scale = cfg_.softmax_scale;
  Tensor out = reshape(block_attention(reshape(call.q, folded), reshape(call.k, folded), reshape(call.v, folded), args),
                       call.q.shape());

  stats_ = AttentionStats{};
  stats_.backend = "adaptive";
  stats_.seq_len = N;
  double per_head = 0, flops = 0;
  for (int64_t r = 0; r < nb; ++r) {
    per_head += static_cast<double>(budgets[r]);
    flops += static_cast<double>(budgets[r]) * block_pair_flops(std::min(bs, N - r * bs), bs, D);
  }
  stats_.active_blocks = static_cast<int64_t>(per_head) * B * H;
  stats_.dense_blocks = (call.causal ? nb * (nb + 1) / 2 : nb * nb) * B * H;
  stats_.density = stats_.dense_blocks ? static_cast<double>(stats_.active_blocks) / stats_.dense_blocks : 0.0;
  stats_.target_sparsity = cfg_.adaptive.top_k > 0 ? 0.0 : sparsity;
  stats_.flops = flops * static_cast<double>(B * H);
  return out;
#else
  (void)call, (void)qbar, (void)kbar, (void)sparsity;
  fail("adaptive attention: selection on the device in a build without CUDA");
#endif
}

}  // namespace sparrow::attn
