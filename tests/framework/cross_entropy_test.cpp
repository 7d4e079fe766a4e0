// cross_entropy on the CPU: the loss against log-softmax + NLL by hand (with ignored targets),
// the gradient formula (softmax − onehot)/count, gradients by finite differences in f64, the
// all-ignored case, bf16/f32 logits, and the errors (bad targets are named).
// linear_cross_entropy (the chunked head + loss) against the unfused pair, by finite differences,
// and its errors. Then on every device (CrossEntropyOnDevice): vocabularies up to 50K against the
// f64 host reference (both ops), the all-ignored case and bad targets.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <functional>

#include "common/devices.h"
#include "common/gradcheck.h"

using namespace sparrow;
using sparrow::testing::gradcheck;
using sparrow::testing::leaf;
using sparrow::testing::rel_error;

namespace {

double reference_loss(const Tensor& logits, const std::vector<int32_t>& t, int32_t ignore) {
  const std::vector<double> x = logits.to_vector();
  const int64_t V = logits.size(1);
  double total = 0;
  int count = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == ignore) continue;
    double m = -INFINITY, z = 0;
    for (int64_t j = 0; j < V; ++j) m = std::max(m, x[i * V + j]);
    for (int64_t j = 0; j < V; ++j) z += std::exp(x[i * V + j] - m);
    total += m + std::log(z) - x[i * V + t[i]];
    ++count;
  }
  return count ? total / count : 0.0;
}

TEST(CrossEntropy, MatchesReferenceWithIgnoredTargets) {
  Generator g(1);
  Tensor x = randn({6, 11}, g, DType::F64, Device::cpu(), 3.0);
  const std::vector<int32_t> t{3, -100, 0, 10, -100, 7};
  Tensor loss = cross_entropy(x, from_ints(t, {6}));
  EXPECT_EQ(loss.dim(), 0);
  EXPECT_EQ(loss.dtype(), DType::F64);
  EXPECT_NEAR(loss.item(), reference_loss(x, t, -100), 1e-12);
  // A custom ignore_index: -100 would now be out of range, so use 5 and valid ids.
  const std::vector<int32_t> t2{5, 1, 5, 2, 9, 0};
  EXPECT_NEAR(cross_entropy(x, from_ints(t2, {6}), 5).item(), reference_loss(x, t2, 5), 1e-12);
}

TEST(CrossEntropy, GradientIsSoftmaxMinusOnehotOverCount) {
  Generator g(2);
  Tensor x = leaf({4, 5}, g);
  const std::vector<int32_t> t{1, -100, 4, 0};
  cross_entropy(x, from_ints(t, {4})).backward();
  const std::vector<double> xv = x.to_vector(), gv = x.grad().to_vector();
  for (int i = 0; i < 4; ++i) {
    double z = 0;
    for (int j = 0; j < 5; ++j) z += std::exp(xv[i * 5 + j]);
    for (int j = 0; j < 5; ++j) {
      const double expect = t[i] == -100 ? 0.0 : (std::exp(xv[i * 5 + j]) / z - (j == t[i] ? 1.0 : 0.0)) / 3.0;
      EXPECT_NEAR(gv[i * 5 + j], expect, 1e-12) << i << "," << j;
    }
  }
}

TEST(CrossEntropy, GradcheckWithIgnoredTargets) {
  Generator g(3);
  Tensor t = from_ints({2, -100, 0, 6, 6, -100, 1}, {7});
  auto f = [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t); };
  EXPECT_TRUE(gradcheck(f, {leaf({7, 8}, g, 2.0)}));
  Tensor t2 = from_ints({3, 0, 2}, {3});
  auto f2 = [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t2, 0); };
  EXPECT_TRUE(gradcheck(f2, {leaf({3, 4}, g)}));
}

TEST(CrossEntropy, GradcheckThroughTransposedView) {
  Generator g(4);
  Tensor t = from_ints({1, 4, 0}, {3});
  auto f = [&](const std::vector<Tensor>& in) { return cross_entropy(in[0].transpose(0, 1), t); };
  EXPECT_TRUE(gradcheck(f, {leaf({5, 3}, g)}));
}

TEST(CrossEntropy, AllIgnoredIsZeroWithZeroGradient) {
  Generator g(5);
  Tensor x = leaf({3, 4}, g);
  Tensor loss = cross_entropy(x, from_ints({-100, -100, -100}, {3}));
  EXPECT_EQ(loss.item(), 0.0);
  loss.backward();
  for (double v : x.grad().to_vector()) EXPECT_EQ(v, 0.0);
}

TEST(CrossEntropy, LowPrecisionLogits) {
  Generator g(6);
  Tensor x = randn({16, 300}, g, DType::F64, Device::cpu(), 2.0);
  std::vector<int32_t> t(16);
  for (int i = 0; i < 16; ++i) t[i] = (i * 37) % 300;
  t[3] = -100;
  for (DType dt : {DType::F32, DType::BF16}) {
    Tensor xd = x.to(dt);
    Tensor loss = cross_entropy(xd, from_ints(t, {16}));
    EXPECT_EQ(loss.dtype(), DType::F32) << "the loss stays f32 for " << dtype_name(dt) << " logits";
    EXPECT_NEAR(loss.item(), reference_loss(xd, t, -100), 1e-4) << dtype_name(dt);
  }
}

TEST(CrossEntropy, BadTargetThrowsNamingIt) {
  Tensor x = zeros({3, 4});
  for (int32_t bad : {4, -1, 77}) {
    try {
      cross_entropy(x, from_ints({0, bad, 1}, {3}));
      ADD_FAILURE() << "target " << bad << " did not throw";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("cross_entropy"), std::string::npos) << msg;
      EXPECT_NE(msg.find(std::to_string(bad)), std::string::npos) << msg;
    }
  }
}

TEST(CrossEntropy, ShapeAndDtypeErrors) {
  EXPECT_THROW(cross_entropy(zeros({3, 4}), from_ints({0, 1}, {2})), Error);
  EXPECT_THROW(cross_entropy(zeros({3, 4, 1}), from_ints({0, 1, 2}, {3})), Error);
  EXPECT_THROW(cross_entropy(zeros({3, 4}), zeros({3})), Error);
  EXPECT_THROW(cross_entropy(zeros({3, 4}), from_ints({0, 1, 2, 0, 0, 0}, {3, 2})), Error);
}

}  // namespace

// linear_cross_entropy: the chunked head + loss equals the unfused matmul + cross_entropy, loss and
// both gradients, for chunks that split the rows unevenly, one row, and all of them at once.
TEST(LinearCrossEntropy, EqualsTheUnfusedHeadAndLoss) {
  Generator g(6);
  const std::vector<int32_t> t{3, -100, 0, 10, 7, 7, -100, 1, 2, 9, 4, 5, 6, 8, 0, 3, 1, -100, 10, 2, 5};
  const int64_t N = static_cast<int64_t>(t.size());
  Tensor x = randn({N, 6}, g, DType::F64), w = randn({11, 6}, g, DType::F64, Device::cpu(), 0.5);
  auto run = [&](int64_t chunk) {
    Tensor xl = x.detach(), wl = w.detach();
    xl.requires_grad_(true);
    wl.requires_grad_(true);
    Tensor tt = from_ints(t, {N});
    Tensor loss = chunk > 0 ? linear_cross_entropy(xl, wl, tt, chunk) : cross_entropy(matmul(xl, wl, false, true), tt);
    loss.backward();
    return std::vector<std::vector<double>>{{loss.item()}, xl.grad().to_vector(), wl.grad().to_vector()};
  };
  const auto want = run(0);
  for (int64_t chunk : {int64_t{1}, int64_t{4}, int64_t{5}, N, int64_t{1000}}) {
    const auto got = run(chunk);
    for (size_t k = 0; k < want.size(); ++k) {
      ASSERT_EQ(got[k].size(), want[k].size());
      for (size_t i = 0; i < want[k].size(); ++i)
        ASSERT_NEAR(got[k][i], want[k][i], 1e-12) << "chunk " << chunk << ", tensor " << k << ", element " << i;
    }
  }
  auto f = [&](const std::vector<Tensor>& in) { return linear_cross_entropy(in[0], in[1], from_ints(t, {N}), 4); };
  EXPECT_TRUE(gradcheck(f, {leaf({N, 6}, g), leaf({11, 6}, g)}));
}

TEST(LinearCrossEntropy, AllIgnoredAndErrors) {
  Generator g(7);
  Tensor x = leaf({3, 4}, g), w = leaf({5, 4}, g);
  Tensor loss = linear_cross_entropy(x, w, from_ints({-100, -100, -100}, {3}), 2);
  EXPECT_EQ(loss.item(), 0.0);
  loss.backward();
  for (double v : x.grad().to_vector()) ASSERT_EQ(v, 0.0);
  for (double v : w.grad().to_vector()) ASSERT_EQ(v, 0.0);
  auto throws_naming = [](const std::function<void()>& f, const std::string& what) {
    try {
      f();
      ADD_FAILURE() << "did not throw (" << what << ")";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  throws_naming([&] { linear_cross_entropy(x, w, from_ints({1, 5, 0}, {3}), 2); }, "target 5");
  throws_naming([&] { linear_cross_entropy(x, w, from_ints({1, 2, 0}, {3}), 0); }, "chunk of 0 rows");
  throws_naming([&] { linear_cross_entropy(x, leaf({5, 3}, g), from_ints({1, 2, 0}, {3}), 2); }, "weight [V, K]");
  throws_naming([&] { linear_cross_entropy(x, w.to(DType::F32), from_ints({1, 2, 0}, {3}), 2); }, "differ in dtype");
}

// ---- on every device: the f32 and bf16 kernels (f64 on the GPU) against the f64 host reference --
namespace {

using sparrow::testing::DeviceTest;
using sparrow::testing::expect_matches_f64;
using sparrow::testing::float_dtypes;
using sparrow::testing::Fn;

class CrossEntropyOnDevice : public DeviceTest {};

using sparrow::testing::fused_tolerance;

}  // namespace

TEST_P(CrossEntropyOnDevice, MatchesTheReference) {
  const Device d = device();
  Generator g(4);
  for (DType dt : float_dtypes(d))
    for (Shape s : {Shape{64, 256}, Shape{7, 50257}, Shape{300, 1000}}) {
      std::vector<int32_t> t(static_cast<size_t>(s[0]));
      for (size_t i = 0; i < t.size(); ++i) t[i] = i % 5 == 2 ? -100 : static_cast<int32_t>((i * 7919) % s[1]);
      Fn f = [&](const std::vector<Tensor>& in) { return cross_entropy(in[0], from_ints(t, {s[0]}, in[0].device())); };
      expect_matches_f64("cross_entropy " + shape_str(s), f, {randn(s, g, DType::F64, Device::cpu(), 2.0)}, d, dt,
                         fused_tolerance(dt));
    }
}

// The chunked head + loss: logits through the device's GEMM (bf16 rounds them: the matmul tests'
// tolerance), chunks of 64 rows over 300, and a vocabulary of 50K in chunks of 7 rows.
TEST_P(CrossEntropyOnDevice, LinearMatchesTheReference) {
  const Device d = device();
  Generator g(8);
  for (DType dt : float_dtypes(d))
    for (const auto& [n, v, chunk] : {std::array<int64_t, 3>{300, 1000, 64}, std::array<int64_t, 3>{20, 50257, 7}}) {
      std::vector<int32_t> t(static_cast<size_t>(n));
      for (size_t i = 0; i < t.size(); ++i) t[i] = i % 5 == 2 ? -100 : static_cast<int32_t>((i * 7919) % v);
      Fn f = [&, chunk = chunk, n = n](const std::vector<Tensor>& in) {
        return linear_cross_entropy(in[0], in[1], from_ints(t, {n}, in[0].device()), chunk);
      };
      expect_matches_f64("linear_cross_entropy N " + std::to_string(n) + ", V " + std::to_string(v), f,
                         {randn({n, 48}, g, DType::F64), randn({v, 48}, g, DType::F64, Device::cpu(), 0.3)}, d, dt,
                         dt == DType::BF16 ? 3e-2 : fused_tolerance(dt));
    }
}

TEST_P(CrossEntropyOnDevice, AllIgnoredAndBadTargets) {
  const Device d = device();
  Generator g(5);
  Tensor x = randn({4, 300}, g, DType::F32, d).detach();
  x.requires_grad_(true);
  Tensor loss = cross_entropy(x, from_ints({-100, -100, -100, -100}, {4}, d));
  EXPECT_EQ(loss.item(), 0.0);
  loss.backward();
  for (double v : x.grad().to_vector()) ASSERT_EQ(v, 0.0);
  for (int32_t bad : {300, -7}) {
    try {
      cross_entropy(x, from_ints({1, bad, -100, 2}, {4}, d));
      ADD_FAILURE() << "target " << bad << " did not throw on " << d.str();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(bad)), std::string::npos) << e.what();
    }
  }
}

SPARROW_DEVICE_TESTS(CrossEntropyOnDevice);
