// The block-attention kernel against a slow explicit dense attention with the equivalent
// element mask: O and the gradients of Σ O∘W for q, k, v, in f64 (1e-10) and f32 (1e-5).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>

#include "attention/kernels/block_attention.h"
#include "attention_reference.h"
#include "common/gradcheck.h"

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
  std::vector<int64_t> key_last;        // empty: key j at position j
  std::shared_ptr<BlockLayout> layout;  // null: dense
};

struct Result {
  double o, dq, dk, dv;
};

// Runs the kernel and the reference on the same random inputs; returns the relative errors.
Result compare(const Case& c, uint64_t seed = 7) {
  Generator g(seed);
  Tensor q = randn({c.B, c.H, c.Nq, c.D}, g, c.dtype), k = randn({c.B, c.H, c.Nk, c.D}, g, c.dtype),
         v = randn({c.B, c.H, c.Nk, c.D}, g, c.dtype), w = randn({c.B, c.H, c.Nq, c.D}, g, c.dtype);
  q.requires_grad_();
  k.requires_grad_();
  v.requires_grad_();
  BlockAttentionArgs args;
  args.layout = c.layout.get();
  args.block_size = c.block;
  args.causal = c.causal;
  args.key_last = c.key_last;
  Tensor o = block_attention(q, k, v, args);
  EXPECT_EQ(o.shape(), q.shape());
  EXPECT_EQ(o.dtype(), c.dtype);
  o.backward(w);
  const int64_t bs = c.layout ? c.layout->block_size : c.block;
  Visible vis = [&](int64_t h, int64_t i, int64_t j) {
    if (c.layout && !st::csr_has(c.layout->head(h), i / bs, j / bs)) return false;
    const int64_t last = c.key_last.empty() ? j : c.key_last[j];
    return !c.causal || last <= i;
  };
  auto ref = reference_attention(q, k, v, w, 1.0 / std::sqrt(double(c.D)), vis);
  return {st::rel_error(o.to_vector(), ref.o), st::rel_error(q.grad().to_vector(), ref.dq),
          st::rel_error(k.grad().to_vector(), ref.dk), st::rel_error(v.grad().to_vector(), ref.dv)};
}

void expect_close(const Result& r, double tol) {
  EXPECT_LT(r.o, tol) << "O";
  EXPECT_LT(r.dq, tol) << "dQ";
  EXPECT_LT(r.dk, tol) << "dK";
  EXPECT_LT(r.dv, tol) << "dV";
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

}  // namespace

TEST(BlockAttention, DenseMatchesReferenceF64) {
  for (bool causal : {false, true}) {
    Case c;
    c.causal = causal;
    SCOPED_TRACE(causal ? "causal" : "non-causal");
    expect_close(compare(c), 1e-10);
  }
}

TEST(BlockAttention, DenseMatchesReferenceF32) {
  for (bool causal : {false, true}) {
    Case c;
    c.causal = causal;
    c.dtype = DType::F32;
    SCOPED_TRACE(causal ? "causal" : "non-causal");
    expect_close(compare(c), 1e-5);
  }
}

TEST(BlockAttention, HeadDims) {
  for (int64_t D : {32, 64, 128})
    for (bool causal : {false, true}) {
      Case c;
      c.B = 1;
      c.H = 2;
      c.Nq = c.Nk = 45;
      c.block = 16;
      c.D = D;
      c.causal = causal;
      SCOPED_TRACE("D=" + std::to_string(D) + (causal ? " causal" : ""));
      expect_close(compare(c), 1e-10);
    }
}

TEST(BlockAttention, PerHeadLayoutsWithEmptyRows) {
  // keep = 0.5 over a 4×4 grid: some query blocks of some heads get no key block at all,
  // and under causal more rows see nothing; those rows must give O = 0 and no gradient.
  for (bool causal : {false, true})
    for (DType dt : {DType::F64, DType::F32}) {
      Case c;
      c.causal = causal;
      c.dtype = dt;
      c.layout = random_layout(c.Nq, c.Nk, c.block, c.H, causal, 0.5, 11);
      SCOPED_TRACE(std::string(causal ? "causal " : "") + dtype_name(dt));
      expect_close(compare(c), dt == DType::F64 ? 1e-10 : 1e-5);
    }
}

TEST(BlockAttention, SharedLayout) {
  Case c;
  c.causal = true;
  c.layout = random_layout(c.Nq, c.Nk, c.block, 1, true, 0.7, 3);
  expect_close(compare(c), 1e-10);
}

TEST(BlockAttention, RowThatSeesNothing) {
  // Every key summarises up to 3 positions ahead, so queries 0..2 see nothing under causal.
  Case c;
  c.Nq = c.Nk = 40;
  c.block = 16;
  c.causal = true;
  for (int64_t j = 0; j < c.Nk; ++j) c.key_last.push_back(j + 3);
  expect_close(compare(c), 1e-10);
  Generator g(1);
  Tensor q = randn({1, 1, 40, 8}, g, DType::F64), k = randn({1, 1, 40, 8}, g, DType::F64);
  BlockAttentionArgs a;
  a.block_size = 16;
  a.causal = true;
  a.key_last = c.key_last;
  std::vector<double> o = block_attention(q, k, k, a).to_vector();
  for (int i = 0; i < 3 * 8; ++i) EXPECT_EQ(o[i], 0.0);
  for (double x : o) EXPECT_TRUE(std::isfinite(x));
}

TEST(BlockAttention, KeyLastWithMoreKeysThanQueries) {
  // 70 fine keys plus 5 pooled summaries of 14 positions each, appended after them: summary p
  // covers positions 14p .. 14p+13 and is visible only from position 14p+13 on.
  for (bool with_layout : {false, true}) {
    Case c;
    c.Nq = 70;
    c.Nk = 75;
    c.block = 16;
    c.causal = true;
    for (int64_t j = 0; j < 70; ++j) c.key_last.push_back(j);
    for (int64_t p = 0; p < 5; ++p) c.key_last.push_back(14 * p + 13);
    if (with_layout) c.layout = random_layout(c.Nq, c.Nk, c.block, c.H, true, 0.8, 5);
    SCOPED_TRACE(with_layout ? "layout" : "dense");
    expect_close(compare(c), 1e-10);
  }
}

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

TEST(BlockAttention, Bf16MatchesF32) {
  Generator g(4);
  const Shape s{1, 2, 70, 32};
  Tensor q32 = randn(s, g), k32 = randn(s, g), v32 = randn(s, g), w32 = randn(s, g);
  auto to_bf16 = [](const Tensor& t) {
    Tensor b = empty(t.shape(), DType::BF16);
    copy_(b, t);
    return b;
  };
  // Round the f32 inputs to bf16 first, so both runs see the same values.
  Tensor qb = to_bf16(q32), kb = to_bf16(k32), vb = to_bf16(v32), wb = to_bf16(w32);
  std::vector<Tensor> ins32, insb;
  for (const Tensor& t : {qb, kb, vb}) {
    Tensor f = empty(s, DType::F32);
    copy_(f, t);
    ins32.push_back(f.requires_grad_());
    insb.push_back(t.detach().requires_grad_());
  }
  Tensor w = empty(s, DType::F32);
  copy_(w, wb);
  BlockAttentionArgs a;
  a.block_size = 32;
  a.causal = true;
  Tensor o32 = block_attention(ins32[0], ins32[1], ins32[2], a);
  Tensor ob = block_attention(insb[0], insb[1], insb[2], a);
  EXPECT_EQ(ob.dtype(), DType::BF16);
  o32.backward(w);
  ob.backward(wb);
  EXPECT_LT(st::rel_error(ob.to_vector(), o32.to_vector()), 1e-2);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(insb[i].grad().dtype(), DType::BF16);
    EXPECT_LT(st::rel_error(insb[i].grad().to_vector(), ins32[i].grad().to_vector()), 1e-2) << "input " << i;
  }
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

TEST(BlockAttention, RowsLongerThanOneRun) {
  // The kernel groups consecutive blocks into runs of 256 keys/queries: at block 64 and N = 330
  // (6 blocks, the last ragged) a row spans a full run and a partial one.
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
      SCOPED_TRACE(std::string(causal ? "causal" : "non-causal") + (with_layout ? " layout" : " dense"));
      expect_close(compare(c), 1e-10);
    }
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
      expect_close(compare(c), 1e-10);
    }
  }
  omp_set_num_threads(saved);
}
