// Reductions on the CPU: sum / mean over dim lists with keepdim, max over a dim (values, the
// first-maximum rule, NaN), sum_to; against direct loops, on contiguous and transposed inputs,
// through every kernel path (rows, columns, split ranges); gradients in f64. Then on every device
// (ReduceOnDevice): the f32 and bf16 kernels, forward and gradient, against the f64 host reference.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "common/devices.h"
#include "common/gradcheck.h"

using namespace sparrow;
using sparrow::testing::gradcheck;
using sparrow::testing::leaf;

namespace {

using Vec = std::vector<double>;

// Reference sum of a [A, B, C] tensor over the listed dims (keepdim = false), by loops.
Vec ref_sum3(const Tensor& t, const std::vector<int>& dims) {
  const Shape s = t.shape();
  Vec v = t.contiguous().to_vector();
  bool r[3] = {false, false, false};
  for (int d : dims) r[d] = true;
  if (dims.empty()) r[0] = r[1] = r[2] = true;
  Shape os;
  for (int d = 0; d < 3; ++d)
    if (!r[d]) os.push_back(s[d]);
  Vec out(static_cast<size_t>(shape_numel(os)), 0.0);
  for (int64_t i = 0; i < s[0]; ++i)
    for (int64_t j = 0; j < s[1]; ++j)
      for (int64_t k = 0; k < s[2]; ++k) {
        int64_t idx[3] = {i, j, k}, o = 0;
        for (int d = 0; d < 3; ++d)
          if (!r[d]) o = o * s[d] + idx[d];
        out[o] += v[(i * s[1] + j) * s[2] + k];
      }
  return out;
}

void expect_near(const Vec& got, const Vec& want, double rtol, double atol = 1e-12) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], atol + rtol * std::abs(want[i])) << "element " << i;
}

const std::vector<std::vector<int>> kDimLists = {{}, {0}, {1}, {2}, {0, 1}, {0, 2}, {1, 2}, {0, 1, 2}};

std::vector<int64_t> as_dims(const std::vector<int>& d) { return std::vector<int64_t>(d.begin(), d.end()); }

Shape keep_shape(const Shape& s, const std::vector<int>& dims) {
  Shape o = s;
  for (size_t d = 0; d < s.size(); ++d)
    if (dims.empty() || std::find(dims.begin(), dims.end(), int(d)) != dims.end()) o[d] = 1;
  return o;
}

}  // namespace

TEST(Reduce, SumAndMeanOverDimLists) {
  Generator g(1);
  Tensor a = randn({3, 4, 5}, g, DType::F64);
  Tensor at = randn({5, 4, 3}, g, DType::F64).permute({2, 1, 0});  // [3, 4, 5], non-contiguous
  ASSERT_FALSE(at.is_contiguous());
  for (const Tensor& x : {a, at})
    for (const auto& dims : kDimLists) {
      Vec want = ref_sum3(x, dims);
      Tensor s = sum(x, as_dims(dims));
      expect_near(s.to_vector(), want, 1e-14);
      Tensor sk = sum(x, as_dims(dims), true);
      EXPECT_EQ(sk.shape(), keep_shape(x.shape(), dims));
      expect_near(sk.to_vector(), want, 1e-14);
      double count = double(x.numel()) / double(want.size());
      Vec wm = want;
      for (double& w : wm) w /= count;
      expect_near(mean(x, as_dims(dims)).to_vector(), wm, 1e-14);
    }
  EXPECT_EQ(sum(a).shape(), Shape{});
  EXPECT_EQ(sum(a, {-1}).shape(), (Shape{3, 4}));
  EXPECT_EQ(sum(a, {}, true).shape(), (Shape{1, 1, 1}));
}

TEST(Reduce, LargeSumsEveryKernelPath) {
  Generator g(2);
  // Sum of everything over many elements (the split-range path), in f32 with double accumulation.
  Tensor big = rand_uniform({400000}, g, 0.0, 1.0);
  Vec bv = big.to_vector();
  double want = 0;
  for (double x : bv) want += x;
  EXPECT_NEAR(sum(big).item(), want, 1e-6 * want);
  EXPECT_NEAR(mean(big).item(), want / 400000, 1e-6);
  // Columns: [M, N] → [N] (the bias gradient), and the same through a transposed view (rows).
  Tensor m = randn({3000, 70}, g);
  Vec mv = m.to_vector(), col(70, 0.0), row(3000, 0.0);
  for (int i = 0; i < 3000; ++i)
    for (int j = 0; j < 70; ++j) {
      col[j] += mv[i * 70 + j];
      row[i] += mv[i * 70 + j];
    }
  expect_near(sum(m, {0}).to_vector(), col, 1e-5, 1e-4);
  expect_near(sum(m, {1}).to_vector(), row, 1e-5, 1e-4);
  Tensor mt = m.transpose(0, 1);  // [70, 3000]
  expect_near(sum(mt, {1}).to_vector(), col, 1e-5, 1e-4);
  expect_near(sum(mt, {0}).to_vector(), row, 1e-5, 1e-4);
  // BF16 sums accumulate wide: 4096 ones is exact although bf16 cannot count past 256 by ones.
  EXPECT_EQ(sum(ones({4096}, DType::BF16)).item(), 4096.0);
  EXPECT_EQ(sum(ones({64, 4096}, DType::BF16), {1}).to_vector(), Vec(64, 4096.0));
}

TEST(Reduce, SumGradients) {
  Generator g(3);
  for (const auto& dims : kDimLists)
    for (bool keep : {false, true}) {
      Tensor a = leaf({2, 3, 4}, g);
      EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& x) { return sum(x[0], as_dims(dims), keep); }, {a}));
      EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& x) { return mean(x[0], as_dims(dims), keep); }, {a}));
      // Through a permuted (non-contiguous) input.
      Tensor b = leaf({4, 2, 3}, g);
      EXPECT_TRUE(gradcheck(
          [&](const std::vector<Tensor>& x) {
            return sum(x[0].permute({1, 2, 0}), as_dims(dims), keep);
          },
          {b}));
    }
}

TEST(Reduce, DimErrors) {
  Tensor a = zeros({2, 3});
  EXPECT_THROW(sum(a, {2}), Error);
  EXPECT_THROW(sum(a, {0, -2}), Error);  // the same dim twice
  EXPECT_THROW(max(a, 3), Error);
  EXPECT_THROW(max(zeros({2, 0}), 1), Error);
  EXPECT_THROW(sum(from_ints({1, 2}, {2})), Error);
}

TEST(Reduce, MaxValuesIndicesAndTies) {
  Tensor a = from_vector(Vec{1, 5, 5, 2, -1, -3, -1, -7}, {2, 4}, DType::F64);
  EXPECT_EQ(max(a, 1).to_vector(), (Vec{5, -1}));
  EXPECT_EQ(max(a, 0).to_vector(), (Vec{1, 5, 5, 2}));
  EXPECT_EQ(max(a, -1, true).shape(), (Shape{2, 1}));
  // Ties: the whole gradient goes to the first maximal element.
  Tensor l = a.clone().detach();
  l.requires_grad_(true);
  sum(max(l, 1)).backward();
  EXPECT_EQ(l.grad().to_vector(), (Vec{0, 1, 0, 0, 1, 0, 0, 0}));
  // NaN propagates.
  Tensor n = from_vector(Vec{1, NAN, 3}, {3}, DType::F32);
  EXPECT_TRUE(std::isnan(max(n, 0).item()));
}

TEST(Reduce, MaxAgainstLoopsOnStridedAndLargeInputs) {
  Generator g(4);
  for (DType t : {DType::F32, DType::F64, DType::BF16}) {
    Tensor a = randn({6, 50, 7}, g, t);
    Tensor at = a.permute({2, 0, 1});  // [7, 6, 50]
    Vec v = a.to_vector();
    for (int64_t d = 0; d < 3; ++d) {
      Tensor m = max(at, d);
      Vec got = m.to_vector();
      // at[i0, i1, i2] = a[i1, i2, i0]
      Shape s = at.shape();
      Shape os;
      for (int64_t k = 0; k < 3; ++k)
        if (k != d) os.push_back(s[k]);
      Vec want(static_cast<size_t>(shape_numel(os)), -INFINITY);
      for (int64_t i0 = 0; i0 < s[0]; ++i0)
        for (int64_t i1 = 0; i1 < s[1]; ++i1)
          for (int64_t i2 = 0; i2 < s[2]; ++i2) {
            int64_t idx[3] = {i0, i1, i2}, o = 0;
            for (int64_t k = 0; k < 3; ++k)
              if (k != d) o = o * s[k] + idx[k];
            want[o] = std::max(want[o], v[(i1 * 50 + i2) * 7 + i0]);
          }
      EXPECT_EQ(got, want) << dtype_name(t) << " dim " << d;
    }
  }
}

TEST(Reduce, MaxGradients) {
  Generator g(5);
  for (int64_t d = 0; d < 3; ++d)
    for (bool keep : {false, true}) {
      Tensor a = leaf({3, 4, 5}, g);  // distinct values with probability 1
      EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& x) { return max(x[0], d, keep); }, {a}));
      Tensor b = leaf({5, 3, 4}, g);
      EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& x) { return max(x[0].permute({1, 2, 0}), d, keep); }, {b}));
    }
}

TEST(Reduce, SumTo) {
  Generator g(6);
  Tensor a = randn({2, 3, 4}, g, DType::F64);
  EXPECT_TRUE(sum_to(a, {2, 3, 4}).same(a));  // nothing to reduce
  expect_near(sum_to(a, {3, 1}).reshape({3}).to_vector(), ref_sum3(a, {0, 2}), 1e-14);
  EXPECT_EQ(sum_to(a, {3, 1}).shape(), (Shape{3, 1}));
  expect_near(sum_to(a, {4}).to_vector(), ref_sum3(a, {0, 1}), 1e-14);
  expect_near(sum_to(a, {1, 1, 4}).to_vector(), ref_sum3(a, {0, 1}), 1e-14);
  expect_near(sum_to(a, {}).to_vector(), ref_sum3(a, {}), 1e-14);
  expect_near(sum_to(a, {2, 1, 1}).to_vector(), ref_sum3(a, {1, 2}), 1e-14);
  EXPECT_THROW(sum_to(a, {5}), Error);
  EXPECT_THROW(sum_to(a, {1, 2, 3, 4}), Error);
  EXPECT_THROW(sum_to(a, {3, 4, 1}), Error);
  for (const Shape& s : {Shape{3, 1}, Shape{4}, Shape{1, 1, 4}, Shape{}, Shape{2, 1, 1}}) {
    Tensor x = leaf({2, 3, 4}, g);
    EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& in) { return sum_to(in[0], s); }, {x})) << shape_str(s);
    Tensor y = leaf({4, 3, 2}, g);
    EXPECT_TRUE(gradcheck(
        [&](const std::vector<Tensor>& in) {
          return sum_to(in[0].permute({2, 1, 0}), s);
        },
        {y}))
        << shape_str(s) << " permuted";
  }
}

// ---- on every device: the f32 and bf16 kernels against the f64 host reference --------------------
namespace {

using sparrow::testing::DeviceTest;
using sparrow::testing::expect_matches_f64;
using sparrow::testing::float_dtypes;
using sparrow::testing::rel_error;

class ReduceOnDevice : public DeviceTest {};

using sparrow::testing::elementwise_tolerance;

}  // namespace

// Each reduction kernel path: rows, short rows, columns, split rows and split columns.
TEST_P(ReduceOnDevice, SumAndMeanEveryKernelPath) {
  const Device d = device();
  Generator gen(3);
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
    bool keep;
  };
  const std::vector<Case> cases = {
      {{3, 4, 5}, {}, false},        {{3, 4, 5}, {-1}, true},
      {{3, 4, 5}, {0, 2}, false},    {{1 << 20}, {}, false},  // all dims, split rows
      {{4096, 768}, {0}, false},                              // columns, split
      {{300, 20000}, {0}, false},                             // columns, no split
      {{8, 100000}, {1}, false},                              // few long rows, split
      {{2048, 768}, {1}, false},                              // many rows
      {{100000, 4}, {1}, true},                               // short rows
      {{16, 64, 32}, {0, 1}, false},                          // columns over two reduced dims
  };
  for (DType dt : float_dtypes(d, false))
    for (const Case& c : cases) {
      Tensor a = rand_uniform(c.shape, gen, -1.0, 2.0, DType::F64);
      const std::string tag = shape_str(c.shape);
      expect_matches_f64(
          "sum " + tag, [&c](const std::vector<Tensor>& x) { return sum(x[0], c.dims, c.keep); }, {a}, d, dt,
          elementwise_tolerance(dt));
      expect_matches_f64(
          "mean " + tag, [&c](const std::vector<Tensor>& x) { return mean(x[0], c.dims, c.keep); }, {a}, d, dt,
          elementwise_tolerance(dt));
    }
  // Permuted input: strided reduced and kept spaces.
  Tensor p = randn({6, 7, 8}, gen, DType::F64);
  for (const std::vector<int64_t>& dims : {std::vector<int64_t>{}, {0}, {1}, {2}, {0, 2}})
    expect_matches_f64(
        "sum permuted",
        [&dims](const std::vector<Tensor>& x) {
          return sum(x[0].permute({2, 0, 1}), dims);
        },
        {p}, d, DType::F32, elementwise_tolerance(DType::F32));
}

TEST_P(ReduceOnDevice, MaxAndSumTo) {
  const Device d = device();
  Generator gen(4);
  for (DType dt : float_dtypes(d, false)) {
    Tensor a = randn({33, 70, 9}, gen, DType::F64);
    for (int64_t dim : {0, 1, 2, -1})
      for (bool keep : {false, true}) {
        expect_matches_f64(
            "max dim " + std::to_string(dim),
            [dim, keep](const std::vector<Tensor>& x) { return max(x[0], dim, keep); }, {a}, d, dt,
            elementwise_tolerance(dt));
        expect_matches_f64(
            "max permuted dim " + std::to_string(dim),
            [dim, keep](const std::vector<Tensor>& x) {
              return max(x[0].permute({1, 2, 0}), dim, keep);
            },
            {a}, d, dt, elementwise_tolerance(dt));
      }
    Tensor b = randn({4, 3, 1000}, gen, DType::F64);
    for (const Shape& s : {Shape{1000}, Shape{3, 1}, Shape{}, Shape{4, 1, 1}, Shape{1, 3, 1000}})
      expect_matches_f64(
          "sum_to " + shape_str(s), [&s](const std::vector<Tensor>& x) { return sum_to(x[0], s); }, {b}, d, dt,
          elementwise_tolerance(dt));
  }
  // Ties and NaN: the first maximum wins, and NaN propagates.
  Tensor t = from_vector(std::vector<double>{2, 7, 7, 1, NAN, 3}, {2, 3}, DType::F32, d);
  std::vector<double> mv = max(t, 1).to_vector();
  EXPECT_EQ(mv[0], 7.0);
  EXPECT_TRUE(std::isnan(mv[1]));
  Tensor l = from_vector(std::vector<double>{2, 7, 7, 1}, {4}, DType::F32, d);
  l.requires_grad_(true);
  max(l, 0).backward();
  EXPECT_EQ(l.grad().to_vector(), (std::vector<double>{0, 1, 0, 0}));
}

SPARROW_DEVICE_TESTS(ReduceOnDevice);
