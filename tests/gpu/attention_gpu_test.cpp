// GPU-only attention tests. The block-attention kernels themselves are tested on every device,
// one body each, in tests/attention/block_attention_test.cpp (BlockAttentionOnDevice: its cuda
// instances run the CUDA kernels against the f64 reference with NaN-poisoned outputs). What
// stays here has no CPU counterpart:
//  - cuDNN SDPA (cudnn_attention) exists only on the GPU: forward and all three gradients
//    against the f64 reference, dense and causal, head dims 64 and 128, a length that is not a
//    multiple of 64 where cuDNN takes it; and the inputs it refuses.
//  - The CUDA kernel's own layout check, called past the dispatcher (attn::cuda:: entry point).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "attention/attention_reference.h"
#include "attention/kernels/block_attention.h"
#include "attention/kernels/cudnn_attention.h"
#include "attention/layout/block_layout.h"
#include "common/gradcheck.h"
#include "common/poison.h"
#include "framework/core/rng.h"

#ifdef SPARROW_WITH_CUDA
#include "attention/kernels/cuda/block_attention.h"
#include "attention/kernels/cuda/cudnn_sdpa.h"
#endif

using namespace sparrow;
using namespace sparrow::attn;
namespace st = sparrow::testing;

namespace {

const Device kGpu = Device::cuda(0);
[[maybe_unused]] constexpr double kBf16Tol = 2e-2;  // ‖gpu − ref‖₂ / ‖ref‖₂ (unused without CUDA)

// cudnn_attention in bf16 on the GPU against the f64 reference on the same bf16-rounded inputs:
// the worst relative 2-norm error of O, dQ, dK, dV; every element must be written and finite.
// (Unused in a build without CUDA, where the test body is compiled out.)
[[maybe_unused]] double cudnn_error(int64_t B, int64_t H, int64_t N, int64_t D, bool causal, uint64_t seed = 11) {
  Generator g(seed);
  auto make = [&](const Shape& s) { return randn(s, g, DType::F64).to(DType::BF16); };
  const Tensor q = make({B, H, N, D}), k = make({B, H, N, D}), v = make({B, H, N, D}), w = make({B, H, N, D});
  Tensor qg = q.to(kGpu).detach(), kg = k.to(kGpu).detach(), vg = v.to(kGpu).detach(), wg = w.to(kGpu);
  qg.requires_grad_();
  kg.requires_grad_();
  vg.requires_grad_();
  const size_t bytes = static_cast<size_t>(qg.numel()) * 2, rows = static_cast<size_t>(B * H * N);
  st::poison_allocator(kGpu, {bytes, rows * 8, static_cast<size_t>(B * H * (N + 64)) * 4});
  Tensor o = cudnn_attention(qg, kg, vg, causal, 0.0);
  EXPECT_EQ(o.dtype(), DType::BF16);
  EXPECT_TRUE(o.is_cuda());
  st::poison_allocator(kGpu, {bytes, rows * 8, static_cast<size_t>(B * H * (N + 64)) * 4});
  o.backward(wg);
  auto ref = st::reference_attention(q, k, v, w, 1.0 / std::sqrt(double(D)),
                                     [&](int64_t, int64_t i, int64_t j) { return !causal || j <= i; });
  const std::vector<double> O = o.to_vector(), dQ = qg.grad().to_vector(), dK = kg.grad().to_vector(),
                            dV = vg.grad().to_vector();
  EXPECT_EQ(st::count_nonfinite(O) + st::count_nonfinite(dQ) + st::count_nonfinite(dK) + st::count_nonfinite(dV), 0u)
      << "elements left unwritten (NaN poison) or non-finite";
  return std::max({st::norm_rel_error(O, ref.o), st::norm_rel_error(dQ, ref.dq), st::norm_rel_error(dK, ref.dk),
                   st::norm_rel_error(dV, ref.dv)});
}

}  // namespace

TEST(AttentionGpu, CudnnMatchesCpu) {
  SPARROW_REQUIRE_GPU();
#ifdef SPARROW_WITH_CUDA
  for (int64_t D : {64, 128})
    for (bool causal : {false, true})
      for (int64_t N : {256, 200}) {
        SCOPED_TRACE(::testing::Message() << "cudnn D=" << D << " N=" << N << (causal ? " causal" : ""));
        Tensor probe = empty({1, 2, N, D}, DType::BF16, kGpu);
        const bool ok = attn::cuda::cudnn_sdpa_supported(probe, causal);
        if (N % 64 == 0) {
          ASSERT_TRUE(ok) << "cuDNN refused a plain bf16 SDPA shape";
        } else if (!ok) {
          std::printf("[   NOTE   ] cuDNN SDPA does not take N=%lld here; skipped\n", static_cast<long long>(N));
          continue;
        }
        EXPECT_LT(cudnn_error(1, 2, N, D, causal), kBf16Tol);
      }
#endif
}

TEST(AttentionGpu, CudnnRejectsWhatItCannotRun) {
  SPARROW_REQUIRE_GPU();
  Tensor f32 = zeros({1, 1, 64, 64}, DType::F32, kGpu);
  Tensor bf = zeros({1, 1, 64, 64}, DType::BF16, kGpu);
#ifdef SPARROW_WITH_CUDA
  EXPECT_FALSE(attn::cuda::cudnn_sdpa_supported(f32, false));
  EXPECT_FALSE(attn::cuda::cudnn_sdpa_supported(zeros({1, 1, 64, 64}, DType::BF16), false));  // on the CPU
#endif
  EXPECT_THROW(cudnn_attention(f32, f32, f32, false), Error);
  EXPECT_THROW(cudnn_attention(bf, bf, zeros({1, 1, 32, 64}, DType::BF16, kGpu), false), Error);
}

// GPU-only: the CUDA entry point's own layout check, called directly, past the dispatcher's
// check_layout (which BlockAttention.BadInputsThrow covers on every device's behalf).
TEST(AttentionGpu, MalformedLayoutThrows) {
  SPARROW_REQUIRE_GPU();
#ifdef SPARROW_WITH_CUDA
  auto L = std::make_shared<BlockLayout>();
  L->seq_len = 128;
  L->block_size = 64;
  L->num_q_blocks = L->num_k_blocks = 2;
  BlockCSR csr;
  csr.row_ptr = {0, 1, 2};
  csr.col_idx = {0, 5};  // key block 5 of 2
  L->heads.push_back(csr);
  Tensor q = zeros({1, 1, 128, 64}, DType::BF16, kGpu);
  BlockAttentionArgs a;
  a.layout = L.get();
  EXPECT_THROW(attn::cuda::block_attention_forward(q, q, q, a), Error);
#endif
}
