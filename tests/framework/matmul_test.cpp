// matmul on the CPU: values against a plain triple loop (every transpose combination, batch
// broadcasting, transposed and row-sliced views, bf16), errors, and gradients by finite
// differences in f64.
// Then on every device (MatmulOnDevice): every transpose combination, batch broadcasting, views,
// linear and mlp_gelu, values and gradients, against the f64 host reference.
#include <gtest/gtest.h>

#include <omp.h>

#include "common/devices.h"
#include "common/gradcheck.h"

using namespace sparrow;
using sparrow::testing::gradcheck;
using sparrow::testing::leaf;
using sparrow::testing::rel_error;

namespace {

// Reference: C = op(A)·op(B) over broadcast batch dims, by loops over doubles.
Tensor reference_matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const std::vector<double> av = a.to_vector(), bv = b.to_vector();
  const int64_t ar = a.size(-2), ac = a.size(-1), br = b.size(-2), bc = b.size(-1);
  const int64_t m = ta ? ac : ar, k = ta ? ar : ac, n = tb ? br : bc;
  Shape a_batch(a.shape().begin(), a.shape().end() - 2), b_batch(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(a_batch, b_batch, "reference");
  const int64_t nb = shape_numel(batch);
  // Batch index of each operand for output batch element i (broadcast by hand).
  auto operand_batch = [&](const Shape& own, int64_t i) {
    int64_t idx = 0, mul = 1;
    for (size_t d = batch.size(); d-- > 0;) {
      const int64_t coord = i % batch[d];
      i /= batch[d];
      const size_t lead = batch.size() - own.size();
      if (d >= lead) {
        const int64_t size = own[d - lead];
        idx += (size == 1 ? 0 : coord) * mul;
        mul *= size;
      }
    }
    return idx;
  };
  std::vector<double> out(static_cast<size_t>(nb * m * n), 0.0);
  for (int64_t i = 0; i < nb; ++i) {
    const double* A = av.data() + operand_batch(a_batch, i) * ar * ac;
    const double* B = bv.data() + operand_batch(b_batch, i) * br * bc;
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < n; ++c) {
        double s = 0;
        for (int64_t q = 0; q < k; ++q)
          s += (ta ? A[q * ac + r] : A[r * ac + q]) * (tb ? B[c * bc + q] : B[q * bc + c]);
        out[(i * m + r) * n + c] = s;
      }
  }
  Shape shape = batch;
  shape.push_back(m);
  shape.push_back(n);
  return from_vector(out, shape, DType::F64);
}

Shape stored(int64_t rows, int64_t cols, bool trans, Shape batch = {}) {
  batch.push_back(trans ? cols : rows);
  batch.push_back(trans ? rows : cols);
  return batch;
}

}  // namespace

TEST(Matmul, AllTransposeCombinationsMatchLoops) {
  Generator g(1);
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      Tensor a = randn(stored(5, 7, ta), g, DType::F64), b = randn(stored(7, 3, tb), g, DType::F64);
      Tensor c = matmul(a, b, ta, tb);
      EXPECT_EQ(c.shape(), (Shape{5, 3}));
      EXPECT_LT(rel_error(c, reference_matmul(a, b, ta, tb)), 1e-14) << "ta=" << ta << " tb=" << tb;
    }
}

TEST(Matmul, BatchBroadcastMatchesLoops) {
  Generator g(2);
  struct Case {
    Shape a, b;
    bool ta, tb;
  };
  const std::vector<Case> cases = {
      {{2, 3, 4, 5}, {3, 5, 6}, false, false},                                     // b broadcast over the leading dim
      {{2, 1, 4, 5}, {3, 5, 6}, false, false},                                     // both broadcast
      {{4, 5}, {2, 3, 5, 6}, false, false},                                        // 2-D a against a batched b
      {{2, 3, 5, 4}, {1, 6, 5}, true, true},   {{2, 3, 4}, {4, 6}, false, false},  // folded into one GEMM
      {{2, 3, 4}, {6, 4}, false, true},                                            // folded, b transposed
      {{2, 4, 3}, {4, 6}, true, false},                                            // not foldable: a transposed
  };
  for (const Case& cs : cases) {
    Tensor a = randn(cs.a, g, DType::F64), b = randn(cs.b, g, DType::F64);
    Tensor c = matmul(a, b, cs.ta, cs.tb);
    Tensor ref = reference_matmul(a, b, cs.ta, cs.tb);
    EXPECT_EQ(c.shape(), ref.shape()) << shape_str(cs.a) << " x " << shape_str(cs.b);
    EXPECT_LT(rel_error(c, ref), 1e-14) << shape_str(cs.a) << " x " << shape_str(cs.b);
  }
}

TEST(Matmul, ViewsGoInWithoutChangingTheResult) {
  Generator g(3);
  Tensor a = randn({3, 6, 4}, g, DType::F64), b = randn({3, 6, 5}, g, DType::F64);
  // A transposed view equals the transpose flag.
  Tensor at = transpose(a, 1, 2);  // [3, 4, 6], column-major inner dims
  EXPECT_FALSE(at.is_contiguous());
  EXPECT_LT(rel_error(matmul(at, b), matmul(a, b, true, false)), 1e-14);
  // A row-sliced view (leading dimension larger than its columns).
  Tensor wide = randn({3, 5, 9}, g, DType::F64);
  Tensor sl = slice(wide, 2, 2, 8);  // [3, 5, 6]
  EXPECT_FALSE(sl.is_contiguous());
  EXPECT_LT(rel_error(matmul(sl, b), reference_matmul(sl.contiguous(), b, false, false)), 1e-14);
  // Permuted views with a unit inner stride map directly (row- or column-major with a larger ld)...
  Tensor p = permute(randn({6, 3, 5}, g, DType::F64), {1, 0, 2});  // [3, 6, 5], strides (5, 15, 1)
  EXPECT_LT(rel_error(matmul(a, p, true, false), reference_matmul(a, p.contiguous(), true, false)), 1e-14);
  Tensor q = permute(randn({5, 3, 6}, g, DType::F64), {1, 2, 0});  // [3, 6, 5], strides (6, 1, 18)
  EXPECT_LT(rel_error(matmul(a, q, true, false), reference_matmul(a, q.contiguous(), true, false)), 1e-14);
  // ...and one with no unit stride in its inner dims is copied first.
  Tensor r = permute(randn({6, 5, 3}, g, DType::F64), {2, 0, 1});  // [3, 6, 5], strides (1, 15, 3)
  EXPECT_LT(rel_error(matmul(a, r, true, false), reference_matmul(a, r.contiguous(), true, false)), 1e-14);
}

TEST(Matmul, LargeBatchRunsInParallelAndAgrees) {
  Generator g(4);
  const int64_t batch = 4 * std::max(1, omp_get_max_threads()) + 1;
  Tensor a = randn({batch, 40, 30}, g, DType::F32), b = randn({batch, 30, 50}, g, DType::F32);
  EXPECT_LT(rel_error(matmul(a, b), reference_matmul(a, b, false, false)), 1e-5);
}

TEST(Matmul, F32AndBf16AgreeWithF64) {
  Generator g(5);
  Tensor a = randn({2, 33, 65}, g, DType::F64), b = randn({65, 17}, g, DType::F64);
  Tensor ref = reference_matmul(a, b, false, false);
  EXPECT_LT(rel_error(matmul(cast(a, DType::F32), cast(b, DType::F32)), ref), 1e-5);
  Tensor ab = cast(a, DType::BF16), bb = cast(b, DType::BF16);
  Tensor c = matmul(ab, bb);
  EXPECT_EQ(c.dtype(), DType::BF16);
  // bf16 inputs, f32 accumulation, one rounding: error is the input rounding (~2^-8 relative).
  EXPECT_LT(rel_error(c, ref), 2e-2);
  EXPECT_LT(rel_error(c, reference_matmul(ab, bb, false, false)), 1e-2);
}

TEST(Matmul, LargeSquareAgreesWithF64) {
  Generator g(6);
  Tensor a = randn({256, 300}, g, DType::F32), b = randn({300, 200}, g, DType::F32);
  Tensor ref = matmul(cast(a, DType::F64), cast(b, DType::F64));
  EXPECT_LT(rel_error(matmul(a, b), ref), 1e-5);
  EXPECT_LT(rel_error(matmul(transpose(a, 0, 1).contiguous(), b, true, false), ref), 1e-5);
}

TEST(Matmul, EmptyAndZeroInnerDims) {
  Tensor a = zeros({3, 0}, DType::F64), b = zeros({0, 4}, DType::F64);
  Tensor c = matmul(a, b);
  EXPECT_EQ(c.shape(), (Shape{3, 4}));
  for (double v : c.to_vector()) EXPECT_EQ(v, 0.0);
  EXPECT_EQ(matmul(zeros({0, 5}), zeros({5, 2})).shape(), (Shape{0, 2}));
}

TEST(Matmul, BadShapesAndTypesThrow) {
  EXPECT_THROW(matmul(zeros({3, 4}), zeros({5, 2})), Error);
  EXPECT_THROW(matmul(zeros({3, 4}), zeros({3, 2}), false, true), Error);
  EXPECT_THROW(matmul(zeros({4}), zeros({4, 2})), Error);
  EXPECT_THROW(matmul(zeros({2, 3, 4}), zeros({3, 4, 2})), Error);  // batch 2 vs 3
  EXPECT_THROW(matmul(zeros({3, 4}), zeros({4, 2}, DType::F64)), Error);
  EXPECT_THROW(matmul(from_ints({1, 2, 3, 4}, {2, 2}), from_ints({1, 2, 3, 4}, {2, 2})), Error);
  try {
    matmul(zeros({3, 4}), zeros({5, 2}));
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("matmul"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[3, 4]"), std::string::npos) << e.what();
  }
}

TEST(MatmulGrad, AllTransposeCombinations) {
  Generator g(7);
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      Tensor a = leaf(stored(4, 5, ta), g), b = leaf(stored(5, 3, tb), g);
      EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& x) { return matmul(x[0], x[1], ta, tb); }, {a, b}))
          << "ta=" << ta << " tb=" << tb;
    }
}

TEST(MatmulGrad, BatchBroadcastSumsGradientsBack) {
  Generator g(8);
  struct Case {
    Shape a, b;
    bool ta, tb;
  };
  const std::vector<Case> cases = {
      {{2, 3, 4, 5}, {3, 5, 2}, false, false}, {{4, 5}, {2, 5, 3}, false, false}, {{2, 1, 5, 4}, {3, 2, 5}, true, true},
      {{2, 3, 4}, {4, 5}, false, false},       {{2, 3, 4}, {5, 4}, false, true},  {{3, 4, 2}, {1, 4, 5}, true, false},
  };
  for (const Case& cs : cases) {
    Tensor a = leaf(cs.a, g), b = leaf(cs.b, g);
    EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& x) { return matmul(x[0], x[1], cs.ta, cs.tb); }, {a, b}))
        << shape_str(cs.a) << (cs.ta ? "^T" : "") << " x " << shape_str(cs.b) << (cs.tb ? "^T" : "");
  }
}

TEST(MatmulGrad, ThroughViews) {
  Generator g(9);
  Tensor a = leaf({2, 5, 4}, g), b = leaf({2, 6, 5}, g);
  // Transposed view of a, row-sliced b: both reach the kernel without a copy.
  EXPECT_TRUE(gradcheck(
      [](const std::vector<Tensor>& x) { return matmul(transpose(x[0], 1, 2), slice(x[1], 1, 1, 6)); }, {a, b}));
}

TEST(MatmulGrad, OnlyInputsThatNeedItGetOne) {
  Generator g(10);
  Tensor a = leaf({3, 4}, g);
  Tensor b = randn({4, 2}, g, DType::F64);
  Tensor c = matmul(a, b);
  c.backward(ones({3, 2}, DType::F64));
  ASSERT_TRUE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
  // dA = 1·Bᵀ: each row of dA is the row sums of B.
  std::vector<double> bv = b.to_vector(), ga = a.grad().to_vector();
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t q = 0; q < 4; ++q) EXPECT_NEAR(ga[r * 4 + q], bv[q * 2] + bv[q * 2 + 1], 1e-12);
}

// linear(x, W, b) = x·Wᵀ + b: finite differences for x, W and b (f64), leading dims kept.
TEST(MatmulGrad, LinearWithBias) {
  Generator g(31);
  Tensor x = leaf({2, 3, 5}, g), w = leaf({4, 5}, g), b = leaf({4}, g);
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& t) { return linear(t[0], t[1], t[2]); }, {x, w, b}));
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& t) { return linear(t[0], t[1]); }, {x, w}));
  EXPECT_EQ(linear(x, w, b).shape(), (Shape{2, 3, 4}));
  EXPECT_THROW(linear(x, leaf({4, 6}, g)), Error);
  EXPECT_THROW(linear(x, w, leaf({3}, g)), Error);
}

// linear(x, W, b, residual) = x·Wᵀ + b + residual (the residual connection inside the GEMM):
// equal to the separate add, finite differences for all four inputs, and a residual of the wrong
// shape or dtype refused.
TEST(MatmulGrad, LinearWithResidual) {
  Generator g(33);
  Tensor x = leaf({2, 3, 5}, g), w = leaf({4, 5}, g), b = leaf({4}, g), r = leaf({2, 3, 4}, g);
  EXPECT_LT(rel_error(linear(x, w, b, r), add(linear(x, w, b), r)), 1e-15);
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& t) { return linear(t[0], t[1], t[2], t[3]); }, {x, w, b, r}));
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& t) { return linear(t[0], t[1], Tensor(), t[2]); }, {x, w, r}));
  EXPECT_THROW(linear(x, w, b, leaf({6, 4}, g)), Error);
  EXPECT_THROW(linear(x, w, b, leaf({2, 3, 1}, g)), Error);
  EXPECT_THROW(linear(x, w, b, r.detach().to(DType::F32)), Error);
}

// mlp_gelu equals linear → gelu → linear, and its gradients pass finite differences (f64, CPU).
TEST(MatmulGrad, MlpGelu) {
  Generator g(32);
  Tensor x = leaf({2, 3, 4}, g), w1 = leaf({6, 4}, g), b1 = leaf({6}, g), w2 = leaf({5, 6}, g), b2 = leaf({5}, g);
  EXPECT_LT(rel_error(mlp_gelu(x, w1, b1, w2, b2), linear(gelu(linear(x, w1, b1)), w2, b2)), 1e-15);
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& t) { return mlp_gelu(t[0], t[1], t[2], t[3], t[4]); },
                        {x, w1, b1, w2, b2}));
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& t) { return mlp_gelu(t[0], t[1], Tensor(), t[2], Tensor()); },
                        {x, w1, w2}));
  EXPECT_THROW(mlp_gelu(x, w1, b1, leaf({5, 7}, g), b2), Error);
  EXPECT_THROW(mlp_gelu(x, w1, leaf({5}, g), w2, b2), Error);
  // With a residual: the separate add's value, and finite differences for it too.
  Tensor r = leaf({2, 3, 5}, g);
  EXPECT_LT(rel_error(mlp_gelu(x, w1, b1, w2, b2, r), add(mlp_gelu(x, w1, b1, w2, b2), r)), 1e-15);
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& t) { return mlp_gelu(t[0], t[1], t[2], t[3], t[4], t[5]); },
                        {x, w1, b1, w2, b2, r}));
  EXPECT_THROW(mlp_gelu(x, w1, b1, w2, b2, leaf({2, 3, 6}, g)), Error);
}

// ---- on every device: f32 and bf16 (f64 on the GPU) against the f64 host reference ---------------
namespace {

using sparrow::testing::DeviceTest;
using sparrow::testing::expect_matches_f64;
using sparrow::testing::float_dtypes;
using sparrow::testing::Fn;

class MatmulOnDevice : public DeviceTest {};

// f32 within 1e-5 relative (no TF32 on the GPU), f64 tightly, bf16 within its output rounding.
double tolerance(DType dt) { return dt == DType::F64 ? 1e-12 : dt == DType::F32 ? 1e-5 : 1e-2; }

struct Case {
  Shape a, b;
  bool ta, tb;
};

const std::vector<Case> kCases =
    {
        {{64, 32}, {32, 48}, false, false},         {{32, 64}, {32, 48}, true, false},
        {{64, 32}, {48, 32}, false, true},          {{32, 64}, {48, 32}, true, true},
        {{37, 19}, {19, 23}, false, false},          // odd sizes: unaligned leading dims
        {{3, 4, 33, 17}, {4, 17, 9}, false, false},  // b broadcast over the leading batch dim
        {{2, 1, 16, 8}, {3, 8, 16}, true, true},     // both broadcast
        {{8, 16}, {5, 16, 12}, false, false},        // 2-D a, batched b (per-element calls)
        {{2, 5, 24}, {24, 7}, false, false},         // folded into one GEMM
        {{6, 128, 64}, {6, 128, 64}, false, true},
};

}  // namespace

// Every transpose combination and batch broadcast: the product and both gradients.
TEST_P(MatmulOnDevice, ProductsAndGradients) {
  const Device d = device();
  Generator g(21);
  for (DType dt : float_dtypes(d))
    for (const Case& c : kCases) {
      Fn f = [&c](const std::vector<Tensor>& x) { return matmul(x[0], x[1], c.ta, c.tb); };
      expect_matches_f64(shape_str(c.a) + " x " + shape_str(c.b), f,
                         {randn(c.a, g, DType::F64), randn(c.b, g, DType::F64)}, d, dt, tolerance(dt));
    }
  Fn plain = [](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); };
  expect_matches_f64("large square", plain, {randn({512, 384}, g, DType::F64), randn({384, 640}, g, DType::F64)}, d,
                     DType::F32, tolerance(DType::F32));
}

// A transposed view, a row slice at an odd element offset (misaligned for 16-byte loads), and a
// permuted view that must be copied.
TEST_P(MatmulOnDevice, ViewsAndOddOffsets) {
  const Device d = device();
  Generator g(24);
  Tensor a = randn({3, 20, 9}, g, DType::F64), b = randn({3, 20, 13}, g, DType::F64);
  Tensor p = randn({20, 3, 9}, g, DType::F64);
  for (DType dt : float_dtypes(d)) {
    expect_matches_f64(
        "transposed view", [](const std::vector<Tensor>& x) { return matmul(transpose(x[0], 1, 2), x[1]); }, {a, b}, d,
        dt, tolerance(dt));
    expect_matches_f64(
        "odd row slice", [](const std::vector<Tensor>& x) { return matmul(x[0], slice(x[1], 2, 1, 12), true, false); },
        {a, b}, d, dt, tolerance(dt));
    expect_matches_f64(
        "permuted view",
        [](const std::vector<Tensor>& x) {
          return matmul(permute(x[0], {1, 0, 2}), x[1], true, false);
        },
        {p, b}, d, dt, tolerance(dt));
  }
}

// linear = x·Wᵀ + b (+ residual) (on the GPU with the bias in cuBLASLt's epilogue, the residual as
// the GEMM's C input): values and every gradient, for 2-D and 3-D inputs, odd and aligned widths.
TEST_P(MatmulOnDevice, LinearWithBias) {
  const Device d = device();
  Generator g(27);
  const std::vector<std::pair<Shape, int64_t>> shapes = {{{64, 32}, 48}, {{3, 37, 19}, 23}, {{2, 128, 64}, 192}};
  for (DType dt : float_dtypes(d, false)) {
    const double tol = dt == DType::F32 ? 1e-5 : 2e-2;
    for (const auto& [xs, n] : shapes) {
      Fn f = [](const std::vector<Tensor>& x) { return linear(x[0], x[1], x[2]); };
      expect_matches_f64("linear " + shape_str(xs) + " n " + std::to_string(n), f,
                         {randn(xs, g, DType::F64), randn({n, xs.back()}, g, DType::F64), randn({n}, g, DType::F64)}, d,
                         dt, tol);
      // With a residual (the GEMM's C input), with and without the bias epilogue.
      Shape ys = xs;
      ys.back() = n;
      Fn fr = [](const std::vector<Tensor>& x) { return linear(x[0], x[1], x[2], x[3]); };
      expect_matches_f64("linear + residual " + shape_str(xs) + " n " + std::to_string(n), fr,
                         {randn(xs, g, DType::F64), randn({n, xs.back()}, g, DType::F64), randn({n}, g, DType::F64),
                          randn(ys, g, DType::F64)},
                         d, dt, tol);
      Fn fr_nobias = [](const std::vector<Tensor>& x) { return linear(x[0], x[1], Tensor(), x[2]); };
      expect_matches_f64("linear without bias + residual " + shape_str(xs) + " n " + std::to_string(n), fr_nobias,
                         {randn(xs, g, DType::F64), randn({n, xs.back()}, g, DType::F64), randn(ys, g, DType::F64)}, d,
                         dt, tol);
    }
  }
}

// mlp_gelu = gelu(x·W1ᵀ + b1)·W2ᵀ + b2 (on the GPU with the GELU in cuBLASLt's epilogues):
// output and all five gradients.
TEST_P(MatmulOnDevice, MlpGelu) {
  const Device d = device();
  Generator g(28);
  struct Shapes {
    Shape x;
    int64_t hidden, out;
  };
  const std::vector<Shapes> shapes = {{{64, 32}, 128, 32}, {{2, 37, 24}, 96, 40}, {{3, 128, 64}, 256, 64}};
  for (DType dt : float_dtypes(d, false)) {
    const double tol = dt == DType::F32 ? 1e-5 : 2e-2;
    for (const Shapes& s : shapes) {
      const int64_t in = s.x.back();
      Fn f = [](const std::vector<Tensor>& x) { return mlp_gelu(x[0], x[1], x[2], x[3], x[4]); };
      expect_matches_f64(
          "mlp_gelu " + shape_str(s.x), f,
          {randn(s.x, g, DType::F64), randn({s.hidden, in}, g, DType::F64), randn({s.hidden}, g, DType::F64),
           randn({s.out, s.hidden}, g, DType::F64), randn({s.out}, g, DType::F64)},
          d, dt, tol);
      Shape ys = s.x;
      ys.back() = s.out;
      Fn fr = [](const std::vector<Tensor>& x) { return mlp_gelu(x[0], x[1], x[2], x[3], x[4], x[5]); };
      expect_matches_f64(
          "mlp_gelu + residual " + shape_str(s.x), fr,
          {randn(s.x, g, DType::F64), randn({s.hidden, in}, g, DType::F64), randn({s.hidden}, g, DType::F64),
           randn({s.out, s.hidden}, g, DType::F64), randn({s.out}, g, DType::F64), randn(ys, g, DType::F64)},
          d, dt, tol);
    }
  }
}

SPARROW_DEVICE_TESTS(MatmulOnDevice);
