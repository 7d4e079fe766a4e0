// CUDA attention against the CPU: the block-attention kernels (tensor-core bf16 path and the
// plain path for f32 / f64 / other block sizes) and cuDNN SDPA, forward and all three
// gradients, for dense / causal / block-sparse layouts, head dims 64 and 128, lengths that are
// not a multiple of the block. The CPU reference runs in f32 on the very bf16-rounded inputs the
// GPU gets; agreement is measured as ‖gpu − cpu‖₂ / ‖cpu‖₂ (bf16 tolerance 2e-2).
//
// "Every element written": before each GPU run the caching allocator is filled with blocks of
// the output sizes whose bytes are all 0xFF (NaN in bf16, f32 and f64) and handed back, so the
// outputs land in poisoned memory; any element a kernel skips stays NaN and fails the finiteness
// check.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "attention/attention_reference.h"
#include "attention/kernels/block_attention.h"
#include "attention/kernels/cudnn_attention.h"
#include "attention/layout/block_layout.h"
#include "common/gradcheck.h"
#include "framework/core/rng.h"

#ifdef SPARROW_WITH_CUDA
#include <cuda_runtime.h>

#include "attention/kernels/cuda/block_attention.h"
#include "attention/kernels/cuda/cudnn_sdpa.h"
#include "framework/cuda/allocator.h"
#include "framework/cuda/runtime.h"
#endif

using namespace sparrow;
using namespace sparrow::attn;
namespace st = sparrow::testing;

namespace {

const Device kGpu = Device::cuda(0);

Tensor on(const Tensor& t, Device d, DType dt) {
  Tensor r = empty(t.shape(), dt, d);
  copy_(r, t);
  return r;
}

// ‖a − b‖₂ / ‖b‖₂ over all elements.
double norm_ratio(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}

size_t count_nonfinite(const std::vector<double>& v) {
  size_t n = 0;
  for (double x : v) n += !std::isfinite(x);
  return n;
}

#ifdef SPARROW_WITH_CUDA
// Fills the allocator's cache with 0xFF-poisoned blocks of these byte sizes (4 of each).
void poison_allocator(const std::vector<size_t>& sizes) {
  std::vector<std::pair<void*, size_t>> blocks;
  for (size_t s : sizes)
    for (int c = 0; c < 4; ++c) {
      void* p = sparrow::cuda::allocate(s, 0);
      SPARROW_CUDA_CHECK(cudaMemsetAsync(p, 0xFF, s, sparrow::cuda::stream()));
      blocks.emplace_back(p, s);
    }
  sparrow::cuda::synchronize();
  for (auto& [p, s] : blocks) sparrow::cuda::release(p, s, 0);
}
#else
void poison_allocator(const std::vector<size_t>&) {}
#endif

struct Case {
  int64_t B = 1, H = 2, Nq = 200, Nk = 200, D = 64, block = 64;
  bool causal = false;
  DType dtype = DType::BF16;  // of the GPU run
  std::vector<int64_t> key_last;
  std::shared_ptr<const BlockLayout> layout;  // null: dense
  bool cudnn = false;                         // run cudnn_attention instead of block_attention
};

struct Errors {
  double o = 0, dq = 0, dk = 0, dv = 0;
  size_t nonfinite = 0;
};

// The GPU run and the CPU reference on the same rounded inputs.
Errors run_case(const Case& c, uint64_t seed = 11) {
  Generator g(seed);
  const DType ref_dt = c.dtype == DType::F64 ? DType::F64 : DType::F32;
  // Inputs rounded to the GPU dtype first, then widened for the CPU reference.
  auto make = [&](const Shape& s) {
    return on(on(randn(s, g, DType::F32), Device::cpu(), c.dtype), Device::cpu(), ref_dt);
  };
  Tensor q = make({c.B, c.H, c.Nq, c.D}), k = make({c.B, c.H, c.Nk, c.D}), v = make({c.B, c.H, c.Nk, c.D});
  Tensor w = make({c.B, c.H, c.Nq, c.D});

  BlockAttentionArgs args;
  args.layout = c.layout.get();
  args.block_size = c.block;
  args.causal = c.causal;
  args.key_last = c.key_last;

  Tensor qr = q.detach(), kr = k.detach(), vr = v.detach();
  qr.requires_grad_();
  kr.requires_grad_();
  vr.requires_grad_();
  Tensor o_ref = block_attention(qr, kr, vr, args);
  o_ref.backward(w);

  Tensor qg = on(q, kGpu, c.dtype), kg = on(k, kGpu, c.dtype), vg = on(v, kGpu, c.dtype), wg = on(w, kGpu, c.dtype);
  qg.requires_grad_();
  kg.requires_grad_();
  vg.requires_grad_();
  const size_t es = dtype_size(c.dtype);
  poison_allocator({static_cast<size_t>(qg.numel()) * es, static_cast<size_t>(kg.numel()) * es,
                    static_cast<size_t>(c.B * c.H * c.Nq) * 8, static_cast<size_t>(c.B * c.H * (c.Nq + 64)) * 4});
  Tensor o = c.cudnn ? cudnn_attention(qg, kg, vg, c.causal, 0.0) : block_attention(qg, kg, vg, args);
  EXPECT_EQ(o.dtype(), c.dtype);
  EXPECT_TRUE(o.is_cuda());
  o.backward(wg);

  Errors e;
  const std::vector<double> O = o.to_vector(), dQ = qg.grad().to_vector(), dK = kg.grad().to_vector(),
                            dV = vg.grad().to_vector();
  e.nonfinite = count_nonfinite(O) + count_nonfinite(dQ) + count_nonfinite(dK) + count_nonfinite(dV);
  e.o = norm_ratio(O, o_ref.to_vector());
  e.dq = norm_ratio(dQ, qr.grad().to_vector());
  e.dk = norm_ratio(dK, kr.grad().to_vector());
  e.dv = norm_ratio(dV, vr.grad().to_vector());
  return e;
}

void expect_close(const Errors& e, double tol) {
  EXPECT_EQ(e.nonfinite, 0u) << "elements left unwritten (NaN poison) or non-finite";
  EXPECT_LT(e.o, tol) << "O";
  EXPECT_LT(e.dq, tol) << "dQ";
  EXPECT_LT(e.dk, tol) << "dK";
  EXPECT_LT(e.dv, tol) << "dV";
}

std::shared_ptr<const BlockLayout> random_layout(int64_t N, int64_t Nk, int64_t bs, int64_t heads, double keep,
                                                 uint64_t seed, bool causal) {
  auto L = std::make_shared<BlockLayout>();
  L->seq_len = N;
  L->key_len = Nk == N ? 0 : Nk;
  L->block_size = bs;
  L->num_q_blocks = (N + bs - 1) / bs;
  L->num_k_blocks = (Nk + bs - 1) / bs;
  L->causal = causal;
  for (int64_t h = 0; h < heads; ++h) {
    BlockCSR c = st::random_csr(L->num_q_blocks, L->num_k_blocks, keep, seed + h);
    L->heads.push_back(std::move(c));
  }
  return L;
}

constexpr double kBf16Tol = 2e-2;

}  // namespace

TEST(AttentionGpu, DenseTensorCores) {
  SPARROW_REQUIRE_GPU();
  for (int64_t D : {64, 128})
    for (bool causal : {false, true}) {
      Case c;
      c.D = D;
      c.causal = causal;
      c.Nq = c.Nk = 200;  // 128 + 72: ragged last query tile and key tile
      SCOPED_TRACE(::testing::Message() << "D=" << D << (causal ? " causal" : ""));
      expect_close(run_case(c), kBf16Tol);
    }
}

TEST(AttentionGpu, DenseHeadDim32AndBatch) {
  SPARROW_REQUIRE_GPU();
  Case c;
  c.B = 2;
  c.H = 3;
  c.D = 32;
  c.Nq = c.Nk = 97;
  c.causal = true;
  expect_close(run_case(c), kBf16Tol);
}

TEST(AttentionGpu, BlockSparseLayout64) {
  SPARROW_REQUIRE_GPU();
  for (bool causal : {false, true})
    for (int64_t D : {64, 128}) {
      Case c;
      c.Nq = c.Nk = 300;  // 4 blocks of 64 + 44
      c.D = D;
      c.causal = causal;
      c.layout = random_layout(300, 300, 64, c.H, 0.45, 21, causal);  // per-head, some empty rows/columns
      SCOPED_TRACE(::testing::Message() << "D=" << D << (causal ? " causal" : ""));
      expect_close(run_case(c), kBf16Tol);
    }
}

TEST(AttentionGpu, BlockSparseLayout128Shared) {
  SPARROW_REQUIRE_GPU();
  for (bool causal : {false, true}) {
    Case c;
    c.Nq = c.Nk = 333;
    c.D = 128;
    c.H = 3;
    c.causal = causal;
    c.layout = random_layout(333, 333, 128, 1, 0.6, 5, causal);  // one CSR for every head
    SCOPED_TRACE(causal ? "causal" : "non-causal");
    expect_close(run_case(c), kBf16Tol);
  }
}

TEST(AttentionGpu, PatternLayoutFromGetLayout) {
  SPARROW_REQUIRE_GPU();
  AttentionConfig cfg;
  cfg.backend = "block_sparse";
  cfg.block_size = 64;
  cfg.sparsity = 0.0;  // the pattern as configured
  cfg.pattern.names = {"bigbird"};
  cfg.pattern.window = 1;
  cfg.pattern.global_blocks = 1;
  cfg.pattern.random_blocks = 2;
  for (bool causal : {false, true}) {
    Case c;
    c.Nq = c.Nk = 1000;
    c.D = 64;
    c.causal = causal;
    c.layout = get_layout(cfg, c.Nq, c.H, causal);
    SCOPED_TRACE(causal ? "causal" : "non-causal");
    expect_close(run_case(c), kBf16Tol);
  }
}

TEST(AttentionGpu, KeyLastSummaryKeys) {
  SPARROW_REQUIRE_GPU();
  // 250 fine keys plus 4 pooled summaries of 64 positions, appended: summary p is visible from
  // position 64p + 63 on (hierarchical's coarse keys).
  for (bool with_layout : {false, true}) {
    Case c;
    c.Nq = 250;
    c.Nk = 254;
    c.D = 64;
    c.causal = true;
    for (int64_t j = 0; j < 250; ++j) c.key_last.push_back(j);
    for (int64_t p = 0; p < 4; ++p) c.key_last.push_back(std::min<int64_t>(64 * p + 63, 249));
    if (with_layout) c.layout = random_layout(c.Nq, c.Nk, 64, c.H, 0.7, 3, true);
    SCOPED_TRACE(with_layout ? "layout" : "dense");
    expect_close(run_case(c), kBf16Tol);
  }
}

TEST(AttentionGpu, PlainPathF32AndOddShapes) {
  SPARROW_REQUIRE_GPU();
  {
    Case c;  // f32: the plain kernels, exact to f32 rounding
    c.dtype = DType::F32;
    c.D = 48;
    c.Nq = c.Nk = 150;
    c.causal = true;
    c.block = 32;
    SCOPED_TRACE("f32 dense causal D=48");
    expect_close(run_case(c), 1e-5);
  }
  {
    Case c;  // bf16 with a layout block that is not a multiple of 64: plain kernels
    c.Nq = c.Nk = 150;
    c.D = 64;
    c.layout = random_layout(150, 150, 32, c.H, 0.5, 9, false);
    SCOPED_TRACE("bf16 layout block 32");
    expect_close(run_case(c), kBf16Tol);
  }
  {
    Case c;  // f64 on the GPU agrees with f64 on the CPU to rounding
    c.dtype = DType::F64;
    c.D = 16;
    c.Nq = 70;
    c.Nk = 70;
    c.causal = true;
    c.layout = random_layout(70, 70, 16, c.H, 0.6, 4, true);
    SCOPED_TRACE("f64 layout block 16");
    expect_close(run_case(c), 1e-10);
  }
}

TEST(AttentionGpu, RowThatSeesNothingGetsZeros) {
  SPARROW_REQUIRE_GPU();
  // A layout whose second query block row is empty: O = 0, LSE = −inf, no gradient, no NaN.
  auto L = std::make_shared<BlockLayout>();
  L->seq_len = 192;
  L->block_size = 64;
  L->num_q_blocks = L->num_k_blocks = 3;
  BlockCSR csr;
  csr.row_ptr = {0, 1, 1, 3};
  csr.col_idx = {0, 0, 2};
  csr.build_transpose(3);
  L->heads.push_back(csr);
  Case c;
  c.Nq = c.Nk = 192;
  c.layout = L;
  expect_close(run_case(c), kBf16Tol);
#ifdef SPARROW_WITH_CUDA
  Generator g(1);
  Tensor q = on(randn({1, 2, 192, 64}, g), kGpu, DType::BF16);
  BlockAttentionArgs a;
  a.layout = L.get();
  a.scale = 0.125;
  BlockAttentionForward f = attn::cuda::block_attention_forward(q, q, q, a);
  const std::vector<double> o = f.out.to_vector(), lse = f.lse.to_vector();
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t i = 64; i < 128; ++i) {
      EXPECT_EQ(lse[h * 192 + i], -std::numeric_limits<double>::infinity());
      for (int64_t d = 0; d < 64; ++d) EXPECT_EQ(o[(h * 192 + i) * 64 + d], 0.0);
    }
#endif
}

TEST(AttentionGpu, CudnnMatchesCpu) {
  SPARROW_REQUIRE_GPU();
#ifdef SPARROW_WITH_CUDA
  for (int64_t D : {64, 128})
    for (bool causal : {false, true})
      for (int64_t N : {256, 200}) {
        Case c;
        c.D = D;
        c.causal = causal;
        c.Nq = c.Nk = N;
        c.cudnn = true;
        SCOPED_TRACE(::testing::Message() << "cudnn D=" << D << " N=" << N << (causal ? " causal" : ""));
        Tensor probe = empty({c.B, c.H, N, D}, DType::BF16, kGpu);
        const bool ok = attn::cuda::cudnn_sdpa_supported(probe, causal);
        if (N % 64 == 0) {
          ASSERT_TRUE(ok) << "cuDNN refused a plain bf16 SDPA shape";
        } else if (!ok) {
          std::printf("[   NOTE   ] cuDNN SDPA does not take N=%lld here; skipped\n", static_cast<long long>(N));
          continue;
        }
        expect_close(run_case(c), kBf16Tol);
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

TEST(AttentionGpu, LayoutCacheFollowsContents) {
  SPARROW_REQUIRE_GPU();
  // The same layout object used twice, then a different layout: each result matches the CPU.
  auto L1 = random_layout(256, 256, 64, 2, 0.5, 1, false);
  auto L2 = random_layout(256, 256, 64, 2, 0.5, 2, false);
  for (auto L : {L1, L1, L2}) {
    Case c;
    c.Nq = c.Nk = 256;
    c.layout = L;
    expect_close(run_case(c), kBf16Tol);
  }
}

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
