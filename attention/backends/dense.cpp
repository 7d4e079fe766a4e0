#include "attention/backends/dense.h"

#include "attention/backends/block_flops.h"
#include "attention/kernels/block_attention.h"
#include "attention/kernels/cuda/cudnn_sdpa.h"
#include "attention/kernels/cudnn_attention.h"
#include "attention/ring/context_parallel.h"
#include "framework/core/profile.h"

namespace sparrow::attn {

DenseAttention::DenseAttention(const AttentionConfig& cfg) : cfg_(cfg) {
  SPARROW_CHECK(cfg.block_size > 0, "dense attention: block_size ", cfg.block_size, " (must be > 0)");
  SPARROW_CHECK(cfg.softmax_scale >= 0, "dense attention: softmax_scale ", cfg.softmax_scale, " (0 means 1/sqrt(D))");
  stats_.backend = "dense";
}

Tensor DenseAttention::forward(const AttentionCall& call) {
  SPARROW_PROFILE_OP("attention dense");
  check_dim("dense attention", call.q, 4);
  BlockAttentionArgs args;
  args.block_size = cfg_.block_size;
  args.causal = call.causal;
  args.scale = cfg_.softmax_scale;
  // On the GPU, bf16 dense attention goes through cuDNN's fused SDPA (the fastest dense kernel
  // on the card); every other case (CPU, f32/f64, shapes cuDNN refuses) through our kernel.
  // Under context parallelism: ring attention over every block of the whole sequence.
  const bool use_cudnn = !call.context && call.q.is_cuda() && call.q.dtype() == DType::BF16 &&
                         cuda::cudnn_sdpa_supported(call.q, call.causal);
  Tensor out = call.context ? ring_.run(call, nullptr, cfg_.softmax_scale)
               : use_cudnn  ? cudnn_attention(call.q, call.k, call.v, call.causal, cfg_.softmax_scale)
                            : block_attention(call.q, call.k, call.v, args);
  stats_.backend = call.context ? "dense(ring)" : use_cudnn ? "dense(cudnn)" : "dense";

  const int64_t B = call.q.size(0), H = call.q.size(1), D = call.q.size(3);
  const int64_t N = call.context ? call.context->seq_len : call.q.size(2);
  const int64_t nb = (N + cfg_.block_size - 1) / cfg_.block_size;
  const std::string backend = stats_.backend;
  stats_ = AttentionStats{};
  stats_.backend = backend;
  stats_.seq_len = N;
  stats_.dense_blocks = (call.causal ? nb * (nb + 1) / 2 : nb * nb) * H;
  stats_.active_blocks = stats_.dense_blocks;
  stats_.density = 1.0;
  stats_.target_sparsity = 0.0;
  stats_.flops = dense_head_flops(N, cfg_.block_size, D, call.causal) * static_cast<double>(B * H);
  if (call.context) ring_.add_to(stats_);
  return out;
}

}  // namespace sparrow::attn
