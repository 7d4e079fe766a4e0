// Core Tensor and autograd engine behaviour.
#include <gtest/gtest.h>

#include <cstring>

#include "common/gradcheck.h"

using namespace sparrow;

TEST(Tensor, FactoriesShapesAndDtypes) {
  Tensor t = zeros({2, 3}, DType::F64);
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.dim(), 2);
  EXPECT_EQ(t.size(-1), 3);
  EXPECT_TRUE(t.is_contiguous());
  Tensor b = from_vector(std::vector<double>{1.5, -2.25, 3.0}, {3}, DType::BF16);
  EXPECT_EQ(b.to_vector(), (std::vector<double>{1.5, -2.25, 3.0}));
  Tensor i = from_ints({1, 2, 3}, {3});
  EXPECT_EQ(i.dtype(), DType::I32);
  EXPECT_THROW(i.data<float>(), Error);
}

TEST(Tensor, Bf16RoundsToNearestEven) {
  EXPECT_EQ(bf16(1.0f).bits, 0x3f80);
  // 1 + 2^-8 lies exactly between two bf16 values: ties go to the even mantissa (1.0).
  EXPECT_EQ(float(bf16(1.00390625f)), 1.0f);
  EXPECT_EQ(float(bf16(1.01171875f)), 1.015625f);
}

TEST(Tensor, CopyBetweenDtypesAndStrides) {
  Tensor a = from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3}, DType::F64);
  Tensor t = make_view(a, {3, 2}, {1, 3}, 0);  // transpose view
  EXPECT_FALSE(t.is_contiguous());
  Tensor out = empty({3, 2}, DType::F32);
  copy_(out, t);
  EXPECT_EQ(out.to_vector(), (std::vector<double>{1, 4, 2, 5, 3, 6}));
}

TEST(Tensor, ViewOutsideStorageThrows) {
  Tensor a = zeros({4});
  EXPECT_THROW(make_view(a, {5}, {1}, 0), Error);
}

TEST(Tensor, DeviceParse) {
  EXPECT_TRUE(Device::parse("cuda:1") == Device::cuda(1));
  EXPECT_THROW(Device::parse("gpu"), std::invalid_argument);
}

TEST(Rng, SeededAndReproducible) {
  Generator a(7), b(7), c(8);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next_u32(), b.next_u32());
  EXPECT_NE(Generator(7).next_u32(), c.next_u32());
  Generator g(1);
  double s = 0, s2 = 0;
  for (int i = 0; i < 20000; ++i) {
    double x = g.normal();
    s += x;
    s2 += x * x;
  }
  EXPECT_NEAR(s / 20000, 0.0, 0.03);
  EXPECT_NEAR(s2 / 20000, 1.0, 0.05);
}

// fill_normal draws in parallel what n calls to normal() draw, on a counter boundary and off one
// (after a single 32-bit draw), and leaves the stream where those calls would.
TEST(Rng, FillNormalEqualsSequentialDraws) {
  for (int skew : {0, 1}) {
    Generator a(11), b(11);
    for (int i = 0; i < skew; ++i) (void)a.next_u32(), (void)b.next_u32();
    const int64_t n = 200000;  // above the parallel threshold
    std::vector<double> par(n);
    a.fill_normal(par.data(), n, 2.5);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(par[i], b.normal() * 2.5) << "draw " << i << " skew " << skew;
    EXPECT_EQ(a.next_u32(), b.next_u32());
  }
}

// randn fills chunk by chunk (from_chunks): across chunk edges the values are n normal() draws,
// converted as from_vector converts them.
TEST(Rng, RandnAcrossChunksEqualsTheDraws) {
  const int64_t n = (int64_t{1} << 22) + 12345;  // two chunks, the second partial
  Generator g(3), h(3);
  const Tensor t = randn({n}, g, DType::BF16);
  std::vector<double> want(static_cast<size_t>(n));
  for (double& x : want) x = h.normal();
  const Tensor w = from_vector(want, {n}, DType::BF16);
  EXPECT_EQ(std::memcmp(t.data_ptr(), w.data_ptr(), static_cast<size_t>(n) * 2), 0);
  EXPECT_EQ(g.next_u32(), h.next_u32());
}
