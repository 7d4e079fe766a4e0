// dropout and rope on the CPU. dropout: the mask is exactly the Philox rule (element i keeps when
// Philox(seed, first + i/4)[i % 4] ≥ ⌊p·2³²⌋), rate and scaling, reproducibility, the generator's
// advance, identity when not training, gradients. rope: values against the rotation by hand,
// position offsets, the relative-position property, norm preservation, gradients, errors.
// Then on every device (DropoutRopeOnDevice): dropout's mask equals the f64 host reference's for
// the same seed, and rope/rope_heads match it, values and gradients.
#include <gtest/gtest.h>

#include <cmath>

#include "common/devices.h"
#include "common/gradcheck.h"

using namespace sparrow;
using sparrow::testing::gradcheck;
using sparrow::testing::leaf;
using sparrow::testing::rel_error;

namespace {

TEST(Dropout, MaskFollowsThePhiloxRule) {
  Generator data(1);
  Tensor x = randn({7, 9}, data, DType::F64);  // 63 elements: the last group is partial
  const double p = 0.35;
  Generator gen(42);
  gen.reserve(5);  // start mid-stream
  Tensor y = dropout(x, p, gen);
  EXPECT_EQ(gen.offset(), 5u + 16u);  // ⌈63/4⌉ counters
  const std::vector<double> xv = x.to_vector(), yv = y.to_vector();
  const uint32_t threshold = static_cast<uint32_t>(std::floor(p * 4294967296.0));
  for (size_t i = 0; i < xv.size(); ++i) {
    uint32_t r[4];
    Philox::generate(42, 5 + i / 4, r);
    const double expect = r[i % 4] >= threshold ? xv[i] / (1 - p) : 0.0;
    EXPECT_DOUBLE_EQ(yv[i], expect) << i;
  }
}

TEST(Dropout, RateAndScale) {
  Tensor x = ones({200000});
  Generator gen(7);
  const std::vector<double> y = dropout(x, 0.3, gen).to_vector();
  int64_t zeros_seen = 0;
  for (double v : y) {
    if (v == 0)
      ++zeros_seen;
    else
      EXPECT_FLOAT_EQ(v, 1.0 / 0.7);
  }
  EXPECT_NEAR(zeros_seen / 200000.0, 0.3, 0.005);
}

TEST(Dropout, SeededReproducibleAndAdvancing) {
  Generator data(2);
  Tensor x = randn({100}, data, DType::F32);
  Generator a(9), b(9);
  const std::vector<double> ya = dropout(x, 0.5, a).to_vector(), yb = dropout(x, 0.5, b).to_vector();
  EXPECT_EQ(ya, yb);
  EXPECT_NE(dropout(x, 0.5, a).to_vector(), ya);  // the next call draws fresh counters
}

TEST(Dropout, IdentityWhenNotTrainingOrZeroRate) {
  Generator data(3);
  Tensor x = randn({4, 4}, data, DType::F32);
  Generator gen(1);
  EXPECT_TRUE(dropout(x, 0.5, gen, false).same(x));
  EXPECT_TRUE(dropout(x, 0.0, gen).same(x));
  EXPECT_EQ(gen.offset(), 0u);
}

TEST(Dropout, BadRateThrows) {
  Generator gen(1);
  Tensor x = zeros({3});
  EXPECT_THROW(dropout(x, -0.1, gen), Error);
  EXPECT_THROW(dropout(x, 1.0, gen), Error);
  EXPECT_THROW(dropout(x, 1.5, gen, false), Error);
}

TEST(Dropout, Gradient) {
  // A fresh generator per call: every evaluation draws the same mask.
  auto f = [](const std::vector<Tensor>& in) {
    Generator gen(11);
    return dropout(in[0], 0.4, gen);
  };
  Generator g(4);
  EXPECT_TRUE(gradcheck(f, {leaf({5, 6}, g)}));
  auto ft = [](const std::vector<Tensor>& in) {
    Generator gen(12);
    return dropout(in[0].transpose(0, 1), 0.25, gen);
  };
  EXPECT_TRUE(gradcheck(ft, {leaf({3, 5}, g)}));
}

TEST(Dropout, Bf16AndF32) {
  Tensor x = ones({1000}, DType::F64);
  Generator a(5), b(5);
  const std::vector<double> y64 = dropout(x, 0.2, a).to_vector();
  const std::vector<double> y16 = dropout(x.to(DType::BF16), 0.2, b).to_vector();
  for (size_t i = 0; i < y64.size(); ++i) EXPECT_NEAR(y16[i], y64[i], 1e-2);
}

// RoPE by hand: the pair (2i, 2i+1) of position n rotates by (offset + n)·base^(−2i/D).
Tensor reference_rope(const Tensor& x, int64_t offset, double base) {
  std::vector<double> v = x.to_vector(), out(v.size());
  const int64_t N = x.size(2), D = x.size(3), rows = x.numel() / D;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = r % N;
    for (int64_t i = 0; i < D / 2; ++i) {
      const double th = (offset + n) * std::pow(base, -2.0 * i / D);
      const double a = v[r * D + 2 * i], b = v[r * D + 2 * i + 1];
      out[r * D + 2 * i] = a * std::cos(th) - b * std::sin(th);
      out[r * D + 2 * i + 1] = a * std::sin(th) + b * std::cos(th);
    }
  }
  return from_vector(out, x.shape(), DType::F64);
}

TEST(Rope, MatchesRotationByHand) {
  Generator g(1);
  Tensor x = randn({2, 3, 5, 8}, g, DType::F64);
  EXPECT_LT(rel_error(rope(x), reference_rope(x, 0, 10000.0)), 1e-13);
  EXPECT_LT(rel_error(rope(x, 17, 500.0), reference_rope(x, 17, 500.0)), 1e-13);
  Tensor xf = x.to(DType::F32), xb = x.to(DType::BF16);
  EXPECT_LT(rel_error(rope(xf, 3), reference_rope(xf, 3, 10000.0)), 1e-6);
  EXPECT_LT(rel_error(rope(xb, 3), reference_rope(xb, 3, 10000.0)), 1e-2);
}

TEST(Rope, PositionZeroIsIdentityAndNormsArePreserved) {
  Generator g(2);
  Tensor x = randn({1, 2, 4, 6}, g, DType::F64);
  const std::vector<double> xv = x.to_vector(), yv = rope(x, 0).to_vector();
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < 6; ++j) EXPECT_DOUBLE_EQ(yv[h * 24 + j], xv[h * 24 + j]);  // n = 0
  for (size_t k = 0; k < xv.size(); k += 2)
    EXPECT_NEAR(yv[k] * yv[k] + yv[k + 1] * yv[k + 1], xv[k] * xv[k] + xv[k + 1] * xv[k + 1], 1e-12);
}

TEST(Rope, OffsetContinuesTheSequence) {
  Generator g(3);
  Tensor x = randn({1, 2, 6, 4}, g, DType::F64);
  Tensor full_seq = rope(x, 0), tail = rope(x.slice(2, 4, 6), 4);
  EXPECT_LT(rel_error(tail, full_seq.slice(2, 4, 6).contiguous()), 1e-13);
}

TEST(Rope, DotProductDependsOnRelativePosition) {
  // ⟨rope(q)_m, rope(k)_n⟩ depends on m − n only: the same q, k at (m, n) = (2, 0) and (7, 5).
  Generator g(4);
  Tensor q = randn({1, 1, 1, 8}, g, DType::F64), k = randn({1, 1, 1, 8}, g, DType::F64);
  auto dot = [](const Tensor& a, const Tensor& b) {
    std::vector<double> x = a.to_vector(), y = b.to_vector();
    double s = 0;
    for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
    return s;
  };
  EXPECT_NEAR(dot(rope(q, 2), rope(k, 0)), dot(rope(q, 7), rope(k, 5)), 1e-12);
  EXPECT_GT(std::abs(dot(rope(q, 2), rope(k, 0)) - dot(rope(q, 3), rope(k, 0))), 1e-6);
}

TEST(Rope, Gradients) {
  Generator g(5);
  auto f = [](const std::vector<Tensor>& in) { return rope(in[0], 3, 100.0); };
  EXPECT_TRUE(gradcheck(f, {leaf({2, 2, 3, 6}, g)}));
  // A permuted (non-contiguous) input: stored [B, N, H, D], used as [B, H, N, D].
  auto fp = [](const std::vector<Tensor>& in) { return rope(in[0].permute({0, 2, 1, 3}), 1); };
  EXPECT_TRUE(gradcheck(fp, {leaf({1, 4, 2, 4}, g)}));
}

// rope_heads equals the composition it replaces: reshape to [B, T, 3, H, D], permute to
// [3, B, H, T, D], rope on q and k, v as is; and its gradient passes finite differences.
TEST(Rope, HeadsEqualsPermuteThenRope) {
  Generator g(6);
  const int64_t B = 2, T = 5, H = 3, D = 4;
  Tensor qkv = randn({B, T, 3 * H * D}, g, DType::F64);
  Tensor heads = rope_heads(qkv, H, 7, 100.0);
  ASSERT_EQ(heads.shape(), (Shape{3, B, H, T, D}));
  Tensor split = permute(reshape(qkv, {B, T, 3, H, D}), {2, 0, 3, 1, 4}).contiguous();
  auto part = [&](const Tensor& t, int64_t i) { return reshape(slice(t, 0, i, i + 1), {B, H, T, D}); };
  EXPECT_LT(rel_error(part(heads, 0), rope(part(split, 0), 7, 100.0)), 1e-14);
  EXPECT_LT(rel_error(part(heads, 1), rope(part(split, 1), 7, 100.0)), 1e-14);
  EXPECT_EQ(part(heads, 2).to_vector(), part(split, 2).to_vector());
  auto f = [](const std::vector<Tensor>& in) { return rope_heads(in[0], 2, 1, 50.0); };
  EXPECT_TRUE(gradcheck(f, {leaf({2, 3, 3 * 2 * 6}, g)}));
  EXPECT_THROW(rope_heads(zeros({2, 3, 20}), 2), Error);  // 20 is not 3·H·D
  EXPECT_THROW(rope_heads(zeros({2, 3, 18}), 2), Error);  // D = 3 is odd
  EXPECT_THROW(rope_heads(zeros({2, 36}), 2), Error);     // not [B, T, 3·H·D]
}

TEST(Rope, Errors) {
  EXPECT_THROW(rope(zeros({1, 1, 2, 5})), Error);
  EXPECT_THROW(rope(zeros({2, 2, 4})), Error);
  EXPECT_THROW(rope(zeros({1, 1, 2, 4}), 0, 0.0), Error);
  try {
    rope(zeros({1, 2, 3, 7}));
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[1, 2, 3, 7]"), std::string::npos) << e.what();
  }
}

}  // namespace

// ---- on every device: the f32 and bf16 kernels (f64 on the GPU) against the f64 host reference --
namespace {

using sparrow::testing::DeviceTest;
using sparrow::testing::expect_matches_f64;
using sparrow::testing::float_dtypes;
using sparrow::testing::Fn;

class DropoutRopeOnDevice : public DeviceTest {};

using sparrow::testing::fused_tolerance;

}  // namespace

// The mask depends on the seed and the element only: the same on every device and in every dtype
// as in the f64 host reference.
TEST_P(DropoutRopeOnDevice, DropoutMaskIsTheReferenceMask) {
  const Device d = device();
  Generator data(6);
  for (DType dt : float_dtypes(d)) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor x = randn({3, 1001}, data, dt);  // 3003 elements: a partial last group
    Tensor xd = x.to(d).detach(), xr = x.to(DType::F64).detach();
    xd.requires_grad_(true);
    xr.requires_grad_(true);
    Generator a(123), b(123);
    a.reserve(17);
    b.reserve(17);
    Tensor yd = dropout(xd, 0.3, a), yr = dropout(xr, 0.3, b);
    EXPECT_EQ(a.offset(), b.offset());
    const std::vector<double> vd = yd.to_vector(), vr = yr.to_vector();
    ASSERT_EQ(vd.size(), vr.size());
    int64_t differ_in_mask = 0;
    for (size_t i = 0; i < vd.size(); ++i) differ_in_mask += (vd[i] == 0) != (vr[i] == 0);
    EXPECT_EQ(differ_in_mask, 0);
    EXPECT_LT(rel_error(yd, yr), fused_tolerance(dt));
    Tensor w = randn(x.shape(), data, dt);
    yd.backward(w.to(d));
    yr.backward(w.to(DType::F64));
    EXPECT_LT(rel_error(xd.grad(), xr.grad()), fused_tolerance(dt));
  }
}

TEST_P(DropoutRopeOnDevice, Rope) {
  const Device d = device();
  Generator g(7);
  for (DType dt : float_dtypes(d)) {
    for (int64_t offset : {int64_t(0), int64_t(100), int64_t(1000000)}) {
      Fn f = [offset](const std::vector<Tensor>& in) { return rope(in[0], offset, 10000.0); };
      // f64 at θ ~ 10⁶ rad: the two libms' pow/sin differ by an ulp or two of θ (~10⁻¹⁰ rad).
      const double tol = dt == DType::F64 && offset > 1000 ? 1e-8 : fused_tolerance(dt);
      expect_matches_f64("rope offset " + std::to_string(offset), f, {randn({2, 4, 33, 64}, g, DType::F64)}, d, dt,
                         tol);
    }
    Fn fp = [](const std::vector<Tensor>& in) { return rope(in[0].permute({0, 2, 1, 3}), 5, 500.0); };
    expect_matches_f64("rope of a permuted view", fp, {randn({1, 9, 3, 16}, g, DType::F64)}, d, dt,
                       fused_tolerance(dt));
  }
}

// rope_heads: the 16-byte vector path (D = 64) and the narrow path (D = 6), offsets up to 10⁶,
// values and the gradient of qkv.
TEST_P(DropoutRopeOnDevice, RopeHeads) {
  const Device d = device();
  Generator g(8);
  for (DType dt : float_dtypes(d)) {
    for (int64_t offset : {int64_t(0), int64_t(1000000)}) {
      Fn f = [offset](const std::vector<Tensor>& in) { return rope_heads(in[0], 3, offset, 10000.0); };
      const double tol = dt == DType::F64 && offset > 1000 ? 1e-8 : fused_tolerance(dt);
      expect_matches_f64("rope_heads D 64 offset " + std::to_string(offset), f,
                         {randn({2, 37, 3 * 3 * 64}, g, DType::F64)}, d, dt, tol);
    }
    Fn narrow = [](const std::vector<Tensor>& in) { return rope_heads(in[0], 2, 3, 500.0); };
    expect_matches_f64("rope_heads D 6", narrow, {randn({1, 9, 3 * 2 * 6}, g, DType::F64)}, d, dt, fused_tolerance(dt));
  }
}

SPARROW_DEVICE_TESTS(DropoutRopeOnDevice);
