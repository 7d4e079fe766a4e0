// softmax and log_softmax on the CPU: values against a per-line reference over every dim of a
// 3-D tensor, stability at large logits, bf16/f32 accuracy, and gradients by finite differences
// in f64 over the last dim, a middle dim, the first dim and a transposed view.
// Then on every device (SoftmaxOnDevice): the f32 and bf16 kernels (f64 on the GPU) over any dim,
// values and gradients, against the f64 host reference.
#include <gtest/gtest.h>

#include <cmath>

#include "common/devices.h"
#include "common/gradcheck.h"

using namespace sparrow;
using sparrow::testing::gradcheck;
using sparrow::testing::leaf;
using sparrow::testing::rel_error;

namespace {

// Reference softmax over `dim` of a contiguous tensor, in doubles.
Tensor reference_softmax(const Tensor& x, int64_t dim, bool log) {
  const std::vector<double> xv = x.to_vector();
  const Shape& s = x.shape();
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < dim; ++i) outer *= s[i];
  for (size_t i = dim + 1; i < s.size(); ++i) inner *= s[i];
  const int64_t D = s[dim];
  std::vector<double> out(xv.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      auto at = [&](int64_t j) { return (o * D + j) * inner + in; };
      double m = -INFINITY, z = 0;
      for (int64_t j = 0; j < D; ++j) m = std::max(m, xv[at(j)]);
      for (int64_t j = 0; j < D; ++j) z += std::exp(xv[at(j)] - m);
      for (int64_t j = 0; j < D; ++j) out[at(j)] = log ? xv[at(j)] - m - std::log(z) : std::exp(xv[at(j)] - m) / z;
    }
  return from_vector(out, s, DType::F64);
}

TEST(Softmax, MatchesReferenceOverEveryDim) {
  Generator g(1);
  Tensor x = randn({3, 5, 4}, g, DType::F64, Device::cpu(), 3.0);
  for (int64_t d = 0; d < 3; ++d) {
    EXPECT_LT(rel_error(softmax(x, d), reference_softmax(x, d, false)), 1e-13) << "dim " << d;
    EXPECT_LT(rel_error(log_softmax(x, d), reference_softmax(x, d, true)), 1e-13) << "dim " << d;
  }
  EXPECT_LT(rel_error(softmax(x, -2), reference_softmax(x, 1, false)), 1e-13);
  EXPECT_LT(rel_error(log_softmax(x), reference_softmax(x, 2, true)), 1e-13);
}

TEST(Softmax, RowsSumToOne) {
  Generator g(2);
  Tensor y = softmax(randn({7, 33}, g, DType::F32, Device::cpu(), 5.0), -1);
  std::vector<double> v = y.to_vector();
  for (int r = 0; r < 7; ++r) {
    double s = 0;
    for (int j = 0; j < 33; ++j) s += v[r * 33 + j];
    EXPECT_NEAR(s, 1.0, 1e-5);
  }
}

TEST(Softmax, StableAtLargeLogits) {
  Tensor x = from_vector(std::vector<double>{1000, 1001, 1002, -1000, 0, 1000}, {2, 3}, DType::F32);
  std::vector<double> y = softmax(x).to_vector(), ly = log_softmax(x).to_vector();
  for (double v : y) EXPECT_TRUE(std::isfinite(v));
  for (double v : ly) EXPECT_TRUE(std::isfinite(v));
  EXPECT_NEAR(y[2], std::exp(2.0) / (1 + std::exp(1.0) + std::exp(2.0)), 1e-6);
  EXPECT_NEAR(ly[3], -2000.0, 1e-3);
  EXPECT_NEAR(y[5], 1.0, 1e-6);
}

TEST(Softmax, F32AndBf16Accuracy) {
  Generator g(3);
  Tensor x = randn({4, 6, 50}, g, DType::F64, Device::cpu(), 2.0);
  for (DType dt : {DType::F32, DType::BF16}) {
    const Tensor xd = x.to(dt);
    for (int64_t d : {1, 2}) {
      const double tol = dt == DType::F32 ? 1e-5 : 1e-2;
      EXPECT_LT(rel_error(softmax(xd, d), reference_softmax(xd, d, false)), tol) << dtype_name(dt) << " dim " << d;
      EXPECT_LT(rel_error(log_softmax(xd, d), reference_softmax(xd, d, true)), tol) << dtype_name(dt) << " dim " << d;
    }
  }
}

TEST(Softmax, GradientsLastDim) {
  Generator g(4);
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return softmax(in[0], -1); }, {leaf({3, 7}, g)}));
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& in) { return log_softmax(in[0], -1); }, {leaf({3, 7}, g)}));
}

TEST(Softmax, GradientsNonLastDims) {
  Generator g(5);
  for (int64_t d : {0, 1}) {
    auto f = [d](const std::vector<Tensor>& in) { return softmax(in[0], d); };
    auto lf = [d](const std::vector<Tensor>& in) { return log_softmax(in[0], d); };
    EXPECT_TRUE(gradcheck(f, {leaf({3, 4, 5}, g)})) << "dim " << d;
    EXPECT_TRUE(gradcheck(lf, {leaf({3, 4, 5}, g)})) << "dim " << d;
  }
}

TEST(Softmax, GradientsThroughTransposedView) {
  Generator g(6);
  auto f = [](const std::vector<Tensor>& in) { return softmax(in[0].transpose(0, 1), -1); };
  auto lf = [](const std::vector<Tensor>& in) { return log_softmax(in[0].transpose(0, 1), 0); };
  EXPECT_TRUE(gradcheck(f, {leaf({5, 3}, g)}));
  EXPECT_TRUE(gradcheck(lf, {leaf({5, 3}, g)}));
}

TEST(Softmax, GradientArrivingInAnotherDtype) {
  // An f32 softmax handed an f64 output gradient: the backward converts it rather than misread it.
  Generator g(7);
  Tensor x = randn({3, 5}, g, DType::F32).detach();
  x.requires_grad_(true);
  Tensor x64 = x.detach().to(DType::F64).detach();
  x64.requires_grad_(true);
  Tensor w = randn({3, 5}, g, DType::F64);
  softmax(x).backward(w);
  softmax(x64).backward(w);
  EXPECT_EQ(x.grad().dtype(), DType::F32);
  EXPECT_LT(rel_error(x.grad(), x64.grad()), 1e-5);
}

TEST(Softmax, Errors) {
  EXPECT_THROW(softmax(zeros({2, 3}), 2), Error);
  EXPECT_THROW(log_softmax(zeros({2, 3}), -3), Error);
  EXPECT_THROW(softmax(from_ints({1, 2}, {2}), 0), Error);
}

}  // namespace

// ---- on every device: the f32 and bf16 kernels (f64 on the GPU) against the f64 host reference --
namespace {

using sparrow::testing::DeviceTest;
using sparrow::testing::expect_matches_f64;
using sparrow::testing::float_dtypes;
using sparrow::testing::Fn;

class SoftmaxOnDevice : public DeviceTest {};

using sparrow::testing::fused_tolerance;

}  // namespace

TEST_P(SoftmaxOnDevice, SoftmaxAndLogSoftmaxOverAnyDim) {
  const Device d = device();
  Generator g(3);
  for (DType dt : float_dtypes(d)) {
    for (bool log : {false, true}) {
      const std::string name = log ? "log_softmax" : "softmax";
      for (auto [s, dim] : {std::pair{Shape{33, 1000}, int64_t(-1)}, std::pair{Shape{4, 50257}, int64_t(1)},
                            std::pair{Shape{300, 17}, int64_t(1)}, std::pair{Shape{6, 50, 7}, int64_t(1)},
                            std::pair{Shape{6, 50, 7}, int64_t(0)}}) {
        Fn f = [log, dim = dim](const std::vector<Tensor>& in) {
          return log ? log_softmax(in[0], dim) : softmax(in[0], dim);
        };
        expect_matches_f64(name + " " + shape_str(s) + " dim " + std::to_string(dim), f,
                           {randn(s, g, DType::F64, Device::cpu(), 3.0)}, d, dt, fused_tolerance(dt));
      }
    }
  }
  // A transposed (non-contiguous) input.
  Fn ft = [](const std::vector<Tensor>& in) { return softmax(in[0].transpose(0, 1), -1); };
  expect_matches_f64("softmax of a transpose", ft, {randn({40, 30}, g, DType::F64)}, d, DType::F32,
                     fused_tolerance(DType::F32));
}

SPARROW_DEVICE_TESTS(SoftmaxOnDevice);
