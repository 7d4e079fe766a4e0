// The block-attention kernel against a slow explicit dense attention in f64 with the equivalent
// element mask (attention_reference.h): O and the gradients of Σ O∘W for q, k, v.
//
// BlockAttentionOnDevice runs each case on every device (tests/common/devices.h): the CPU kernel
// and the CUDA kernels (tensor-core bf16 path; the plain path for f32, f64 and other block sizes)
// against the same f64 reference, on inputs rounded to the case's dtype first. Errors: f64 and
// f32 as max|got − ref| / max|ref| (1e-10, 1e-5); bf16 as ‖got − ref‖₂ / ‖ref‖₂ (2e-2). On the GPU
// every output lands in NaN-poisoned memory (common/poison.h), so an element a kernel never
// writes fails the finiteness check. Cases: dense, head dims 32/64/128, per-head and shared
// layouts with empty rows, patterns from get_layout, key_last summary keys, a row that sees
// nothing (zeros), lengths not a multiple of the block, blocks 16 to 128, causal and not.
//
// The rest is CPU-only: finite differences (f64, tiny shapes), strided inputs, no-grad, bad
// inputs (the dispatcher's checks, the same for every device) and the CPU backward schedules.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>

#include "attention/attention_config.h"
#include "attention/kernels/block_attention.h"
#include "attention_reference.h"
#include "common/devices.h"
#include "common/gradcheck.h"
#include "common/poison.h"

using namespace sparrow;
using namespace sparrow::attn;
namespace st = sparrow::testing;
using sparrow::testing::reference_attention;
using sparrow::testing::Visible;

namespace {

struct Case {
  int64_t B = 2, H = 3, Nq = 100, Nk = 100, D = 32, block = 32;
  bool causal = false;
  DType dtype = DType::F64;
  std::vector<int64_t> key_last;              // empty: key j at position j
  std::shared_ptr<const BlockLayout> layout;  // null: dense
  // O asked for token-major (BlockAttentionArgs::token_major_out) and read as the model reads it,
  // permuted to [B, Nq, H, D], so its gradient comes back through the permute (strided).
  bool token_major = false;
};

struct Result {
  double o, dq, dk, dv;
  size_t nonfinite = 0;  // elements of O, dQ, dK, dV that are NaN or ±inf (unwritten on the GPU)
};

double tolerance(DType dt) { return dt == DType::F64 ? 1e-10 : dt == DType::F32 ? 1e-5 : 2e-2; }

// The error of got against the f64 reference: max-relative for f64 and f32, relative 2-norm for
// bf16 (whose elements round to 2⁻⁸ each).
double error(DType dt, const std::vector<double>& got, const std::vector<double>& ref) {
  return dt == DType::BF16 ? st::norm_rel_error(got, ref) : st::rel_error(got, ref);
}

// Runs the kernel on device d in c.dtype and the reference in f64 on the same rounded inputs;
// returns the errors.
Result compare(const Case& c, Device d, uint64_t seed = 7) {
  Generator g(seed);
  auto make = [&](const Shape& s) { return randn(s, g, DType::F64).to(c.dtype); };
  const Tensor q = make({c.B, c.H, c.Nq, c.D}), k = make({c.B, c.H, c.Nk, c.D}), v = make({c.B, c.H, c.Nk, c.D}),
               w = make({c.B, c.H, c.Nq, c.D});
  Tensor qd = q.to(d).detach(), kd = k.to(d).detach(), vd = v.to(d).detach(), wd = w.to(d);
  qd.requires_grad_();
  kd.requires_grad_();
  vd.requires_grad_();
  BlockAttentionArgs args;
  args.layout = c.layout.get();
  args.block_size = c.block;
  args.causal = c.causal;
  args.key_last = c.key_last;
  args.token_major_out = c.token_major;
  // Cached blocks of every output size (O and dQ; dK and dV; LSE; the backward's row sums) are
  // NaN before the forward and again before the backward.
  const size_t es = dtype_size(c.dtype), rows = static_cast<size_t>(c.B * c.H * c.Nq);
  const std::vector<size_t> sizes{static_cast<size_t>(qd.numel()) * es, static_cast<size_t>(kd.numel()) * es, rows * 8,
                                  static_cast<size_t>(c.B * c.H * (c.Nq + 64)) * 4};
  st::poison_allocator(d, sizes);
  Tensor o = block_attention(qd, kd, vd, args);
  EXPECT_EQ(o.shape(), q.shape());
  EXPECT_EQ(o.dtype(), c.dtype);
  EXPECT_EQ(o.device(), d);
  st::poison_allocator(d, sizes);
  if (c.token_major)
    permute(o, {0, 2, 1, 3}).contiguous().backward(permute(wd, {0, 2, 1, 3}).contiguous());
  else
    o.backward(wd);
  for (const Tensor* t : {&qd, &kd, &vd}) {
    EXPECT_EQ(t->grad().dtype(), c.dtype);
    EXPECT_EQ(t->grad().device(), d);
  }
  const int64_t bs = c.layout ? c.layout->block_size : c.block;
  Visible vis = [&](int64_t h, int64_t i, int64_t j) {
    if (c.layout && !st::csr_has(c.layout->head(h), i / bs, j / bs)) return false;
    const int64_t last = c.key_last.empty() ? j : c.key_last[j];
    return !c.causal || last <= i;
  };
  auto ref = reference_attention(q, k, v, w, 1.0 / std::sqrt(double(c.D)), vis);
  const std::vector<double> O = o.to_vector(), dQ = qd.grad().to_vector(), dK = kd.grad().to_vector(),
                            dV = vd.grad().to_vector();
  Result r{error(c.dtype, O, ref.o), error(c.dtype, dQ, ref.dq), error(c.dtype, dK, ref.dk),
           error(c.dtype, dV, ref.dv)};
  r.nonfinite = st::count_nonfinite(O) + st::count_nonfinite(dQ) + st::count_nonfinite(dK) + st::count_nonfinite(dV);
  return r;
}

void expect_close(const Result& r, double tol) {
  EXPECT_EQ(r.nonfinite, 0u) << "elements left unwritten (NaN poison) or non-finite";
  EXPECT_LT(r.o, tol) << "O";
  EXPECT_LT(r.dq, tol) << "dQ";
  EXPECT_LT(r.dk, tol) << "dK";
  EXPECT_LT(r.dv, tol) << "dV";
}

void expect_matches_reference(const Case& c, Device d, uint64_t seed = 7) {
  SCOPED_TRACE(::testing::Message() << dtype_name(c.dtype) << " B=" << c.B << " H=" << c.H << " Nq=" << c.Nq << " Nk="
                                    << c.Nk << " D=" << c.D << " block=" << (c.layout ? c.layout->block_size : c.block)
                                    << (c.causal ? " causal" : "") << (c.layout ? " layout" : " dense")
                                    << (c.key_last.empty() ? "" : " key_last"));
  expect_close(compare(c, d, seed), tolerance(c.dtype));
}

std::shared_ptr<BlockLayout> random_layout(int64_t N, int64_t Nk, int64_t bs, int64_t heads, bool causal, double keep,
                                           uint64_t seed) {
  auto L = std::make_shared<BlockLayout>();
  L->seq_len = N;
  L->key_len = Nk == N ? 0 : Nk;
  L->block_size = bs;
  L->num_q_blocks = (N + bs - 1) / bs;
  L->num_k_blocks = (Nk + bs - 1) / bs;
  L->causal = causal;
  for (int64_t h = 0; h < heads; ++h)
    L->heads.push_back(st::random_csr(L->num_q_blocks, L->num_k_blocks, keep, seed + h));
  return L;
}

class BlockAttentionOnDevice : public st::DeviceTest {};

}  // namespace

TEST_P(BlockAttentionOnDevice, Dense) {
  for (bool causal : {false, true}) {
    for (DType dt : {DType::F64, DType::F32}) {
      Case c;
      c.causal = causal;
      c.dtype = dt;
      expect_matches_reference(c, device());
    }
    for (int64_t D : {64, 128}) {  // bf16 at block 64: the tensor-core path on the GPU
      Case c;
      c.B = 1;
      c.H = 2;
      c.Nq = c.Nk = 200;  // 128 + 72: ragged last query tile and key tile
      c.D = D;
      c.block = 64;
      c.causal = causal;
      c.dtype = DType::BF16;
      expect_matches_reference(c, device(), 11);
    }
  }
  Case c;  // bf16, head dim 32, several batches and heads
  c.D = 32;
  c.Nq = c.Nk = 97;
  c.block = 64;
  c.causal = true;
  c.dtype = DType::BF16;
  expect_matches_reference(c, device(), 11);
}

// O asked for token-major (a hint: the sm_90a kernel writes it so, the others contiguous) and its
// gradient arriving through the permute the model applies: the same values either way.
TEST_P(BlockAttentionOnDevice, TokenMajorOutput) {
  for (bool causal : {false, true}) {
    for (int64_t D : {64, 128}) {  // bf16 at block 128: the sm_90a path on an H100/H200
      Case c;
      c.Nq = c.Nk = 300;
      c.D = D;
      c.causal = causal;
      c.dtype = DType::BF16;
      c.layout = random_layout(300, 300, 128, c.H, causal, 0.6, 31);
      c.token_major = true;
      expect_matches_reference(c, device(), 13);
    }
    Case c;  // f64: the plain kernels
    c.causal = causal;
    c.token_major = true;
    expect_matches_reference(c, device());
  }
}

TEST_P(BlockAttentionOnDevice, HeadDims) {
  for (int64_t D : {32, 64, 128})
    for (bool causal : {false, true}) {
      Case c;
      c.B = 1;
      c.H = 2;
      c.Nq = c.Nk = 45;
      c.block = 16;
      c.D = D;
      c.causal = causal;
      expect_matches_reference(c, device());
    }
}

TEST_P(BlockAttentionOnDevice, PerHeadLayoutsWithEmptyRows) {
  // keep = 0.5 over a 4×4 grid: some query blocks of some heads get no key block at all,
  // and under causal more rows see nothing; those rows must give O = 0 and no gradient.
  for (bool causal : {false, true}) {
    for (DType dt : {DType::F64, DType::F32}) {
      Case c;
      c.causal = causal;
      c.dtype = dt;
      c.layout = random_layout(c.Nq, c.Nk, c.block, c.H, causal, 0.5, 11);
      expect_matches_reference(c, device());
    }
    for (int64_t D : {64, 128}) {  // bf16 at block 64, 300 = 4 blocks + 44
      Case c;
      c.B = 1;
      c.H = 2;
      c.Nq = c.Nk = 300;
      c.D = D;
      c.causal = causal;
      c.dtype = DType::BF16;
      c.layout = random_layout(300, 300, 64, c.H, causal, 0.45, 21);
      expect_matches_reference(c, device(), 11);
    }
  }
}

TEST_P(BlockAttentionOnDevice, SharedLayout) {
  {
    Case c;
    c.causal = true;
    c.layout = random_layout(c.Nq, c.Nk, c.block, 1, true, 0.7, 3);
    expect_matches_reference(c, device());
  }
  for (bool causal : {false, true}) {  // bf16 at block 128, one CSR for every head
    Case c;
    c.B = 1;
    c.H = 3;
    c.Nq = c.Nk = 333;
    c.D = 128;
    c.causal = causal;
    c.dtype = DType::BF16;
    c.layout = random_layout(333, 333, 128, 1, causal, 0.6, 5);
    expect_matches_reference(c, device(), 11);
  }
}

TEST_P(BlockAttentionOnDevice, PatternLayoutFromGetLayout) {
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
    c.B = 1;
    c.H = 2;
    c.Nq = c.Nk = 1000;
    c.D = 64;
    c.causal = causal;
    c.dtype = DType::BF16;
    c.layout = get_layout(cfg, c.Nq, c.H, causal);
    expect_matches_reference(c, device(), 11);
  }
}

TEST_P(BlockAttentionOnDevice, KeyLastSummaryKeys) {
  for (bool with_layout : {false, true}) {
    {
      // 70 fine keys plus 5 pooled summaries of 14 positions each, appended after them: summary
      // p covers positions 14p .. 14p+13 and is visible only from position 14p+13 on.
      Case c;
      c.Nq = 70;
      c.Nk = 75;
      c.block = 16;
      c.causal = true;
      for (int64_t j = 0; j < 70; ++j) c.key_last.push_back(j);
      for (int64_t p = 0; p < 5; ++p) c.key_last.push_back(14 * p + 13);
      if (with_layout) c.layout = random_layout(c.Nq, c.Nk, c.block, c.H, true, 0.8, 5);
      expect_matches_reference(c, device());
    }
    {
      // bf16 at block 64: 250 fine keys plus 4 pooled summaries of 64 positions, summary p
      // visible from position 64p + 63 on (hierarchical's coarse keys).
      Case c;
      c.B = 1;
      c.H = 2;
      c.Nq = 250;
      c.Nk = 254;
      c.D = 64;
      c.block = 64;
      c.causal = true;
      c.dtype = DType::BF16;
      for (int64_t j = 0; j < 250; ++j) c.key_last.push_back(j);
      for (int64_t p = 0; p < 4; ++p) c.key_last.push_back(std::min<int64_t>(64 * p + 63, 249));
      if (with_layout) c.layout = random_layout(c.Nq, c.Nk, 64, c.H, true, 0.7, 3);
      expect_matches_reference(c, device(), 11);
    }
  }
}

// A query row that sees no key: O = 0 and LSE = −inf exactly, no gradient, no NaN.
TEST_P(BlockAttentionOnDevice, RowThatSeesNothingGetsZeros) {
  const Device d = device();
  auto expect_zero_rows = [&](const Tensor& q, const Tensor& k, const BlockAttentionArgs& a, int64_t from, int64_t to) {
    const int64_t H = q.size(1), N = q.size(2), D = q.size(3);
    BlockAttentionForward f = block_attention_forward(q.to(d), k.to(d), k.to(d), a);
    EXPECT_EQ(f.out.device(), d);
    const std::vector<double> o = f.out.to_vector(), lse = f.lse.to_vector();
    EXPECT_EQ(st::count_nonfinite(o), 0u);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = from; i < to; ++i) {
        EXPECT_EQ(lse[h * N + i], -std::numeric_limits<double>::infinity()) << "head " << h << " row " << i;
        for (int64_t j = 0; j < D; ++j) EXPECT_EQ(o[(h * N + i) * D + j], 0.0) << "head " << h << " row " << i;
      }
  };
  {
    // Every key summarises up to 3 positions ahead, so queries 0..2 see nothing under causal.
    Case c;
    c.Nq = c.Nk = 40;
    c.block = 16;
    c.causal = true;
    for (int64_t j = 0; j < c.Nk; ++j) c.key_last.push_back(j + 3);
    expect_matches_reference(c, d);
    Generator g(1);
    BlockAttentionArgs a;
    a.block_size = 16;
    a.causal = true;
    a.key_last = c.key_last;
    expect_zero_rows(randn({1, 1, 40, 8}, g, DType::F64), randn({1, 1, 40, 8}, g, DType::F64), a, 0, 3);
  }
  {
    // bf16 at block 64, a layout whose second query block row is empty.
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
    c.B = 1;
    c.H = 2;
    c.Nq = c.Nk = 192;
    c.D = 64;
    c.dtype = DType::BF16;
    c.layout = L;
    expect_matches_reference(c, d, 11);
    Generator g(1);
    const Tensor q = randn({1, 2, 192, 64}, g, DType::F64).to(DType::BF16);
    BlockAttentionArgs a;
    a.layout = L.get();
    a.scale = 0.125;
    expect_zero_rows(q, q, a, 64, 128);
  }
}

// Lengths and head dims off the tensor-core shapes, layout blocks that are not a multiple of 64
// (the plain kernels on the GPU), in each dtype.
TEST_P(BlockAttentionOnDevice, OddShapesAndBlockSizes) {
  {
    Case c;
    c.B = 1;
    c.H = 2;
    c.dtype = DType::F32;
    c.D = 48;
    c.Nq = c.Nk = 150;
    c.causal = true;
    c.block = 32;
    expect_matches_reference(c, device(), 11);
  }
  {
    Case c;
    c.B = 1;
    c.H = 2;
    c.dtype = DType::BF16;
    c.D = 64;
    c.Nq = c.Nk = 150;
    c.layout = random_layout(150, 150, 32, c.H, false, 0.5, 9);
    expect_matches_reference(c, device(), 11);
  }
  {
    Case c;
    c.B = 1;
    c.H = 2;
    c.dtype = DType::F64;
    c.D = 16;
    c.Nq = c.Nk = 70;
    c.causal = true;
    c.layout = random_layout(70, 70, 16, c.H, true, 0.6, 4);
    expect_matches_reference(c, device(), 11);
  }
}

TEST_P(BlockAttentionOnDevice, RowsLongerThanOneRun) {
  // The CPU kernel groups consecutive blocks into runs of 256 keys/queries: at block 64 and
  // N = 330 (6 blocks, the last ragged) a row spans a full run and a partial one.
  for (bool causal : {false, true})
    for (bool with_layout : {false, true}) {
      Case c;
      c.B = 1;
      c.H = 2;
      c.Nq = c.Nk = 330;
      c.D = 16;
      c.block = 64;
      c.causal = causal;
      if (with_layout) c.layout = random_layout(c.Nq, c.Nk, c.block, c.H, causal, 0.8, 21);
      expect_matches_reference(c, device());
    }
}

TEST_P(BlockAttentionOnDevice, LayoutCacheFollowsContents) {
  // The same layout object used twice, then a different one (the GPU caches a layout's device
  // copy): each result matches the reference.
  auto L1 = random_layout(256, 256, 64, 2, false, 0.5, 1);
  auto L2 = random_layout(256, 256, 64, 2, false, 0.5, 2);
  for (auto L : {L1, L1, L2}) {
    Case c;
    c.B = 1;
    c.H = 2;
    c.Nq = c.Nk = 256;
    c.D = 64;
    c.dtype = DType::BF16;
    c.layout = L;
    expect_matches_reference(c, device(), 11);
  }
}

SPARROW_DEVICE_TESTS(BlockAttentionOnDevice);

TEST(BlockAttention, NonContiguousInputs) {
  // q, k, v as [B, N, H, D] storage viewed as [B, H, N, D] (the usual qkv-split layout).
  Generator g(2);
  const int64_t B = 2, H = 2, N = 33, D = 16;
  auto bhnd_view = [&](const Tensor& t) { return make_view(t, {B, H, N, D}, {N * H * D, D, H * D, 1}, 0); };
  Tensor qs = randn({B, N, H, D}, g, DType::F64), ks = randn({B, N, H, D}, g, DType::F64),
         vs = randn({B, N, H, D}, g, DType::F64);
  Tensor q = bhnd_view(qs), k = bhnd_view(ks), v = bhnd_view(vs);
  ASSERT_FALSE(q.is_contiguous());
  Tensor qc = empty(q.shape(), DType::F64), kc = empty(q.shape(), DType::F64), vc = empty(q.shape(), DType::F64);
  copy_(qc, q);
  copy_(kc, k);
  copy_(vc, v);
  BlockAttentionArgs a;
  a.block_size = 8;
  a.causal = true;
  EXPECT_LT(st::rel_error(block_attention(q, k, v, a).to_vector(), block_attention(qc, kc, vc, a).to_vector()), 1e-15);
}

TEST(BlockAttention, FiniteDifferences) {
  Generator g(9);
  BlockAttentionArgs a;
  a.block_size = 4;
  a.causal = true;
  for (int64_t j = 0; j < 7; ++j) a.key_last.push_back(j < 6 ? j : 5);  // the last key summarises 0..5
  std::vector<Tensor> in{st::leaf({1, 2, 6, 3}, g), st::leaf({1, 2, 7, 3}, g), st::leaf({1, 2, 7, 3}, g)};
  EXPECT_TRUE(st::gradcheck([&](const std::vector<Tensor>& x) { return block_attention(x[0], x[1], x[2], a); }, in));
  a.causal = false;
  a.key_last.clear();
  std::vector<Tensor> in2{st::leaf({1, 1, 5, 3}, g), st::leaf({1, 1, 5, 3}, g), st::leaf({1, 1, 5, 3}, g)};
  a.scale = 0.7;
  EXPECT_TRUE(st::gradcheck([&](const std::vector<Tensor>& x) { return block_attention(x[0], x[1], x[2], a); }, in2));
}

TEST(BlockAttention, NoGradRecordsNothing) {
  Generator g(1);
  Tensor q = st::leaf({1, 1, 8, 4}, g);
  NoGradGuard ng;
  BlockAttentionArgs a;
  a.block_size = 4;
  EXPECT_FALSE(block_attention(q, q, q, a).requires_grad());
}

TEST(BlockAttention, BadInputsThrow) {
  Generator g(1);
  Tensor q = randn({1, 2, 16, 8}, g), k = randn({1, 2, 16, 8}, g);
  BlockAttentionArgs a;
  a.block_size = 8;
  EXPECT_THROW(block_attention(q, randn({1, 2, 16, 4}, g), k, a), Error);              // head dims
  EXPECT_THROW(block_attention(q, randn({1, 3, 16, 8}, g), k, a), Error);              // heads
  EXPECT_THROW(block_attention(q, k, randn({1, 2, 15, 8}, g), a), Error);              // k vs v
  EXPECT_THROW(block_attention(randn({2, 16, 8}, g), k, k, a), Error);                 // rank
  EXPECT_THROW(block_attention(q, randn({1, 2, 16, 8}, g, DType::F64), k, a), Error);  // dtype
  BlockAttentionArgs bad = a;
  bad.key_last = {1, 2, 3};
  EXPECT_THROW(block_attention(q, k, k, bad), Error);
  bad = a;
  bad.block_size = 0;
  EXPECT_THROW(block_attention(q, k, k, bad), Error);
  auto L = random_layout(32, 32, 8, 2, false, 1.0, 1);  // built for 32 tokens, q has 16
  bad = a;
  bad.layout = L.get();
  EXPECT_THROW(block_attention(q, k, k, bad), Error);
  L = random_layout(16, 16, 8, 3, false, 1.0, 1);  // 3 head layouts for 2 heads
  bad.layout = L.get();
  EXPECT_THROW(block_attention(q, k, k, bad), Error);
  L = random_layout(16, 16, 8, 1, false, 1.0, 1);
  L->heads[0].col_ptr.clear();  // no transpose
  bad.layout = L.get();
  EXPECT_THROW(block_attention(q, k, k, bad), Error);
}

// The backward has two schedules: one pass per (batch·head) when there are at least as many
// heads as threads, else a dQ pass and a dK/dV pass. Both must match the reference, whatever
// OMP_NUM_THREADS the suite runs with.
TEST(BlockAttention, BothBackwardSchedulesMatchTheReference) {
  const int saved = omp_get_max_threads();
  for (int threads : {1, 8}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    omp_set_num_threads(threads);  // B·H = 2: one pass at 1 thread, two passes at 8
    for (bool causal : {false, true}) {
      Case c;
      c.B = 1;
      c.H = 2;
      c.causal = causal;
      expect_close(compare(c, Device::cpu()), 1e-10);
    }
  }
  omp_set_num_threads(saved);
}
