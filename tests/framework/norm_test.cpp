// layer_norm and rms_norm on the CPU: values against a plain per-row reference (f64, f32, bf16),
// gradients of x, weight and bias by finite differences in f64 (with and without bias, through
// a transposed view, with only the parameters requiring grad), and the errors.
// Then on every device (NormOnDevice): the f32 and bf16 kernels (f64 on the GPU), values and
// every gradient, against the f64 host reference, alone and on a residual stream (h + norm(h),
// whose backward folds the skip's gradient into dx).
#include <gtest/gtest.h>

#include <cmath>

#include "common/devices.h"
#include "common/gradcheck.h"

using namespace sparrow;
using sparrow::testing::gradcheck;
using sparrow::testing::leaf;
using sparrow::testing::rel_error;

namespace {

// Reference over the last dim, in doubles. centered: layer_norm; else rms_norm.
Tensor reference_norm(bool centered, const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  const std::vector<double> xv = x.to_vector(), wv = w.to_vector();
  const std::vector<double> bv = b.defined() ? b.to_vector() : std::vector<double>(wv.size(), 0.0);
  const int64_t D = x.size(-1), rows = x.numel() / D;
  std::vector<double> out(xv.size());
  for (int64_t r = 0; r < rows; ++r) {
    const double* row = xv.data() + r * D;
    double mu = 0, var = 0;
    if (centered) {
      for (int64_t j = 0; j < D; ++j) mu += row[j];
      mu /= D;
    }
    for (int64_t j = 0; j < D; ++j) var += (row[j] - mu) * (row[j] - mu);
    var /= D;
    for (int64_t j = 0; j < D; ++j) out[r * D + j] = (row[j] - mu) / std::sqrt(var + eps) * wv[j] + bv[j];
  }
  return from_vector(out, x.shape(), DType::F64);
}

TEST(LayerNorm, MatchesReferenceInF64) {
  Generator g(1);
  Tensor x = randn({3, 4, 7}, g, DType::F64, Device::cpu(), 2.0);
  Tensor w = randn({7}, g, DType::F64), b = randn({7}, g, DType::F64);
  Tensor y = layer_norm(x, w, b, 1e-5);
  EXPECT_EQ(y.shape(), x.shape());
  EXPECT_EQ(y.dtype(), DType::F64);
  EXPECT_LT(rel_error(y, reference_norm(true, x, w, b, 1e-5)), 1e-12);
  EXPECT_LT(rel_error(layer_norm(x, w, Tensor(), 1e-3), reference_norm(true, x, w, Tensor(), 1e-3)), 1e-12);
}

TEST(LayerNorm, F32AndBf16MatchReference) {
  Generator g(2);
  Tensor x = randn({5, 96}, g, DType::F64, Device::cpu(), 3.0);
  Tensor w = randn({96}, g, DType::F64), b = randn({96}, g, DType::F64);
  for (DType dt : {DType::F32, DType::BF16}) {
    // Reference from the inputs as rounded to dt, so only the compute error is measured.
    Tensor xd = x.to(dt), wd = w.to(dt), bd = b.to(dt);
    Tensor ref = reference_norm(true, xd, wd, bd, 1e-5);
    Tensor y = layer_norm(xd, wd, bd, 1e-5);
    EXPECT_EQ(y.dtype(), dt);
    EXPECT_LT(rel_error(y, ref), dt == DType::F32 ? 1e-5 : 1e-2) << dtype_name(dt);
  }
}

TEST(LayerNorm, GradientsOfXWeightBias) {
  Generator g(3);
  auto f = [](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2], 1e-5); };
  EXPECT_TRUE(gradcheck(f, {leaf({2, 3, 6}, g), leaf({6}, g), leaf({6}, g)}));
}

TEST(LayerNorm, GradientsWithoutBias) {
  Generator g(4);
  auto f = [](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], Tensor(), 1e-5); };
  EXPECT_TRUE(gradcheck(f, {leaf({4, 5}, g), leaf({5}, g)}));
}

TEST(LayerNorm, GradientsThroughTransposedView) {
  Generator g(5);
  // x stored [6, 4] and normalised as its transpose [4, 6]: a non-contiguous input.
  auto f = [](const std::vector<Tensor>& in) { return layer_norm(in[0].transpose(0, 1), in[1], in[2], 1e-5); };
  EXPECT_TRUE(gradcheck(f, {leaf({6, 4}, g), leaf({6}, g), leaf({6}, g)}));
}

TEST(LayerNorm, OnlyParametersRequireGrad) {
  Generator g(6);
  Tensor x = randn({3, 4}, g, DType::F64);  // no grad
  auto f = [&](const std::vector<Tensor>& in) { return layer_norm(x, in[0], in[1], 1e-5); };
  EXPECT_TRUE(gradcheck(f, {leaf({4}, g), leaf({4}, g)}));
  EXPECT_FALSE(x.grad().defined());
}

TEST(LayerNorm, ManyRowsParameterGradients) {
  // Enough rows that every OpenMP thread holds a partial sum of dweight / dbias.
  Generator g(7);
  auto f = [](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2], 1e-5); };
  EXPECT_TRUE(gradcheck(f, {leaf({67, 3}, g), leaf({3}, g), leaf({3}, g)}));
}

TEST(LayerNorm, LargeGradientsMatchHandFormulas) {
  // Big enough for the multi-threaded path: dx, dweight and dbias against the formulas by hand.
  Generator g(11);
  const int64_t R = 600, D = 64;
  Tensor x = leaf({R, D}, g), w = leaf({D}, g), b = leaf({D}, g);
  Tensor gout = randn({R, D}, g, DType::F64);
  layer_norm(x, w, b, 1e-5).backward(gout);
  const std::vector<double> xv = x.to_vector(), wv = w.to_vector(), gv = gout.to_vector();
  const std::vector<double> dx = x.grad().to_vector(), dw = w.grad().to_vector(), db = b.grad().to_vector();
  std::vector<double> ew(D, 0.0), eb(D, 0.0);
  double worst = 0;
  for (int64_t r = 0; r < R; ++r) {
    const double* row = xv.data() + r * D;
    double mu = 0, var = 0;
    for (int64_t j = 0; j < D; ++j) mu += row[j] / D;
    for (int64_t j = 0; j < D; ++j) var += (row[j] - mu) * (row[j] - mu) / D;
    const double rs = 1 / std::sqrt(var + 1e-5);
    double mg = 0, mgx = 0;
    for (int64_t j = 0; j < D; ++j) {
      const double gg = gv[r * D + j] * wv[j], xh = (row[j] - mu) * rs;
      mg += gg / D;
      mgx += gg * xh / D;
      ew[j] += gv[r * D + j] * xh;
      eb[j] += gv[r * D + j];
    }
    for (int64_t j = 0; j < D; ++j) {
      const double xh = (row[j] - mu) * rs;
      worst = std::max(worst, std::abs(dx[r * D + j] - rs * (gv[r * D + j] * wv[j] - mg - xh * mgx)));
    }
  }
  EXPECT_LT(worst, 1e-10);
  for (int64_t j = 0; j < D; ++j) {
    EXPECT_NEAR(dw[j], ew[j], 1e-9) << j;
    EXPECT_NEAR(db[j], eb[j], 1e-9) << j;
  }
}

TEST(LayerNorm, Errors) {
  Tensor x = zeros({2, 4}), w = ones({4}), b = zeros({4});
  EXPECT_THROW(layer_norm(x, ones({5}), b), Error);
  EXPECT_THROW(layer_norm(x, w, zeros({3})), Error);
  EXPECT_THROW(layer_norm(x, ones({4}, DType::F64), b), Error);
  EXPECT_THROW(layer_norm(x, ones({1, 4}), b), Error);
  EXPECT_THROW(layer_norm(from_ints({1, 2}, {1, 2}), ones({2}), Tensor()), Error);
  try {
    layer_norm(x, ones({5}), b);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer_norm"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[2, 4]"), std::string::npos) << e.what();
  }
}

TEST(RmsNorm, MatchesReference) {
  Generator g(8);
  Tensor x = randn({4, 3, 10}, g, DType::F64, Device::cpu(), 2.0);
  Tensor w = randn({10}, g, DType::F64);
  EXPECT_LT(rel_error(rms_norm(x, w, 1e-6), reference_norm(false, x, w, Tensor(), 1e-6)), 1e-12);
  Tensor xb = x.to(DType::BF16), wb = w.to(DType::BF16);
  EXPECT_LT(rel_error(rms_norm(xb, wb, 1e-6), reference_norm(false, xb, wb, Tensor(), 1e-6)), 1e-2);
  Tensor xf = x.to(DType::F32), wf = w.to(DType::F32);
  EXPECT_LT(rel_error(rms_norm(xf, wf, 1e-6), reference_norm(false, xf, wf, Tensor(), 1e-6)), 1e-5);
}

TEST(RmsNorm, GradientsOfXAndWeight) {
  Generator g(9);
  auto f = [](const std::vector<Tensor>& in) { return rms_norm(in[0], in[1], 1e-6); };
  EXPECT_TRUE(gradcheck(f, {leaf({3, 2, 5}, g), leaf({5}, g)}));
  EXPECT_TRUE(gradcheck(f, {leaf({41, 4}, g), leaf({4}, g)}));
}

TEST(RmsNorm, GradientsThroughTransposedView) {
  Generator g(10);
  auto f = [](const std::vector<Tensor>& in) { return rms_norm(in[0].transpose(0, 1), in[1], 1e-6); };
  EXPECT_TRUE(gradcheck(f, {leaf({5, 3}, g), leaf({5}, g)}));
}

TEST(RmsNorm, Errors) {
  EXPECT_THROW(rms_norm(zeros({2, 4}), ones({3})), Error);
  EXPECT_THROW(rms_norm(zeros({2, 4}), Tensor()), Error);
}

}  // namespace

// ---- on every device: the f32 and bf16 kernels (f64 on the GPU) against the f64 host reference --
namespace {

using sparrow::testing::DeviceTest;
using sparrow::testing::expect_matches_f64;
using sparrow::testing::float_dtypes;
using sparrow::testing::Fn;

class NormOnDevice : public DeviceTest {};

using sparrow::testing::fused_tolerance;

}  // namespace

TEST_P(NormOnDevice, LayerNorm) {
  const Device d = device();
  Generator g(1);
  auto ln = [](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2], 1e-5); };
  auto ln_nobias = [](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], Tensor(), 1e-5); };
  // On a residual stream (h + LN(h)): the skip's gradient is folded into the kernel's dx.
  auto ln_residual = [](const std::vector<Tensor>& in) {
    const Tensor h = mul_scalar(in[0], 1.5);
    return add(h, layer_norm(h, in[1], in[2], 1e-5));
  };
  for (DType dt : float_dtypes(d)) {
    for (Shape s : {Shape{37, 768}, Shape{3, 5, 3000}, Shape{3000, 64}, Shape{4, 7}}) {
      const int64_t D = s.back();
      std::vector<Tensor> in{randn(s, g, DType::F64, Device::cpu(), 2.0), randn({D}, g, DType::F64),
                             randn({D}, g, DType::F64)};
      expect_matches_f64("layer_norm " + shape_str(s), ln, in, d, dt, fused_tolerance(dt));
      expect_matches_f64("layer_norm without bias " + shape_str(s), ln_nobias, {in[0], in[1]}, d, dt,
                         fused_tolerance(dt));
      expect_matches_f64("layer_norm on a residual stream " + shape_str(s), ln_residual, in, d, dt,
                         fused_tolerance(dt));
    }
  }
  // Only the parameters need gradients (no dx kernel).
  std::vector<Tensor> in{randn({50, 96}, g, DType::F64), randn({96}, g, DType::F64), randn({96}, g, DType::F64)};
  expect_matches_f64("layer_norm params only", ln, in, d, DType::F32, fused_tolerance(DType::F32), {false, true, true});
}

TEST_P(NormOnDevice, RmsNorm) {
  const Device d = device();
  Generator g(2);
  auto rn = [](const std::vector<Tensor>& in) { return rms_norm(in[0], in[1], 1e-6); };
  auto rn_residual = [](const std::vector<Tensor>& in) {
    const Tensor h = mul_scalar(in[0], 1.5);
    return add(h, rms_norm(h, in[1], 1e-6));
  };
  for (DType dt : float_dtypes(d))
    for (Shape s : {Shape{37, 512}, Shape{2, 3, 4100}, Shape{2000, 32}}) {
      std::vector<Tensor> in{randn(s, g, DType::F64, Device::cpu(), 2.0), randn({s.back()}, g, DType::F64)};
      expect_matches_f64("rms_norm " + shape_str(s), rn, in, d, dt, fused_tolerance(dt));
      expect_matches_f64("rms_norm on a residual stream " + shape_str(s), rn_residual, in, d, dt, fused_tolerance(dt));
    }
}

SPARROW_DEVICE_TESTS(NormOnDevice);
