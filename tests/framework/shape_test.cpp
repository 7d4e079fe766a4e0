// Shape/view ops, contiguous, cast and to_device on the CPU: values, which results are views,
// errors, and gradients by finite differences in f64. Then on every device (ShapeOnDevice): views,
// concat/split, zero-filled gradient gaps, cast and to_device, exactly against the f64 host run.
#include <gtest/gtest.h>

#include <array>
#include <numeric>

#include "common/devices.h"
#include "common/gradcheck.h"

using namespace sparrow;
using sparrow::testing::gradcheck;
using sparrow::testing::leaf;
using sparrow::testing::observe;

namespace {

Tensor iota(const Shape& s, DType t = DType::F64) {
  std::vector<double> v(static_cast<size_t>(shape_numel(s)));
  std::iota(v.begin(), v.end(), 0.0);
  return from_vector(v, s, t);
}

bool shares_storage(const Tensor& a, const Tensor& b) { return a.impl().storage == b.impl().storage; }

// out = a·b + c on three tensors of one shape, whose backward returns (g·b, g·a, g) adjacent in one
// buffer whatever the inputs' layout (the engine must cope with any; attention's empty_adjacent
// makes one only for adjacent inputs). `made` gets that buffer's address.
Tensor mul_add_adjacent(const Tensor& a, const Tensor& b, const Tensor& c, const void** made) {
  Tensor out;
  {
    NoGradGuard no_grad;
    out = add(mul(a, b), c);
  }
  const Tensor ad = a.detach(), bd = b.detach();
  return record(out, "mul_add_adjacent", {a, b, c}, [ad, bd, made](const Tensor& g) {
    const Tensor buffer = empty({3, ad.size(0), ad.size(1)}, ad.dtype(), ad.device());
    std::vector<Tensor> d;
    for (int64_t i = 0; i < 3; ++i) d.push_back(reshape(slice(buffer, 0, i, i + 1), ad.shape()));
    copy_(d[0], mul(g, bd));
    copy_(d[1], mul(g, ad));
    copy_(d[2], g);
    *made = d[0].data_ptr();
    return d;
  });
}

}  // namespace

TEST(Reshape, ViewOfContiguousWithInferredDim) {
  Tensor a = iota({2, 3, 4});
  Tensor r = reshape(a, {4, -1});
  EXPECT_EQ(r.shape(), (Shape{4, 6}));
  EXPECT_TRUE(shares_storage(a, r));
  EXPECT_EQ(r.to_vector(), a.to_vector());
  EXPECT_EQ(a.reshape({24}).shape(), (Shape{24}));
  EXPECT_EQ(reshape(iota({1}), {}).shape(), Shape{});
}

TEST(Reshape, NonContiguousInputIsCopiedInRowMajorOrder) {
  Tensor a = iota({2, 3});
  Tensor t = transpose(a, 0, 1);  // [[0,3],[1,4],[2,5]]
  Tensor r = reshape(t, {6});
  EXPECT_FALSE(shares_storage(a, r));
  EXPECT_EQ(r.to_vector(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
}

TEST(Reshape, BadShapesThrow) {
  Tensor a = iota({2, 3});
  EXPECT_THROW(reshape(a, {4, 2}), Error);
  EXPECT_THROW(reshape(a, {-1, -1}), Error);
  EXPECT_THROW(reshape(a, {4, -1}), Error);
  EXPECT_THROW(reshape(a, {-2, 3}), Error);
}

TEST(Transpose, SwapsShapeAndStridesWithoutCopy) {
  Tensor a = iota({2, 3, 4});
  Tensor t = transpose(a, 0, -1);
  EXPECT_EQ(t.shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(t.strides(), (Shape{1, 4, 12}));
  EXPECT_TRUE(shares_storage(a, t));
  EXPECT_EQ(t.contiguous().to_vector()[1], 12.0);  // t[0,0,1] = a[1,0,0]
  EXPECT_THROW(transpose(a, 0, 3), Error);
}

TEST(Permute, ReordersDimsAndChecksTheOrder) {
  Tensor a = iota({2, 3, 4});
  Tensor p = permute(a, {1, 2, 0});
  EXPECT_EQ(p.shape(), (Shape{3, 4, 2}));
  std::vector<double> v = p.contiguous().to_vector(), av = a.to_vector();
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t k = 0; k < 2; ++k) EXPECT_EQ(v[(i * 4 + j) * 2 + k], av[(k * 3 + i) * 4 + j]);
  EXPECT_THROW(permute(a, {0, 1}), Error);
  EXPECT_THROW(permute(a, {0, 1, 1}), Error);
  EXPECT_THROW(permute(a, {0, 1, 3}), Error);
}

TEST(Slice, ViewWithNegativeBoundsAndRangeChecks) {
  Tensor a = iota({3, 5});
  Tensor s = slice(a, 1, 1, -1);
  EXPECT_EQ(s.shape(), (Shape{3, 3}));
  EXPECT_TRUE(shares_storage(a, s));
  EXPECT_EQ(s.contiguous().to_vector(), (std::vector<double>{1, 2, 3, 6, 7, 8, 11, 12, 13}));
  EXPECT_EQ(a.slice(0, 2, 3).to_vector(), (std::vector<double>{10, 11, 12, 13, 14}));
  EXPECT_EQ(slice(a, 0, 1, 1).shape(), (Shape{0, 5}));
  EXPECT_THROW(slice(a, 1, 3, 2), Error);
  EXPECT_THROW(slice(a, 1, 0, 6), Error);
  EXPECT_THROW(slice(a, 2, 0, 1), Error);
}

TEST(Concat, JoinsAlongAnyDimAndChecksShapes) {
  Tensor a = iota({2, 2}), b = iota({2, 1});
  Tensor c = concat({a, b}, 1);
  EXPECT_EQ(c.shape(), (Shape{2, 3}));
  EXPECT_EQ(c.to_vector(), (std::vector<double>{0, 1, 0, 2, 3, 1}));
  Tensor d = concat({a, transpose(a, 0, 1)}, 0);  // a strided part
  EXPECT_EQ(d.to_vector(), (std::vector<double>{0, 1, 2, 3, 0, 2, 1, 3}));
  EXPECT_THROW(concat({a, b}, 0), Error);
  EXPECT_THROW(concat({a, iota({2, 2}, DType::F32)}, 0), Error);
  EXPECT_THROW(concat({}, 0), Error);
}

TEST(Split, PartsAreViewsAndSizesMustAddUp) {
  Tensor a = iota({2, 5});
  std::vector<Tensor> parts = split(a, {2, 0, 3}, 1);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].to_vector(), (std::vector<double>{0, 1, 5, 6}));
  EXPECT_EQ(parts[1].shape(), (Shape{2, 0}));
  EXPECT_EQ(parts[2].to_vector(), (std::vector<double>{2, 3, 4, 7, 8, 9}));
  EXPECT_TRUE(shares_storage(a, parts[2]));
  EXPECT_THROW(split(a, {2, 2}, 1), Error);
  EXPECT_THROW(split(a, {6, -1}, 1), Error);
}

TEST(Contiguous, IdentityWhenContiguousCopyOtherwise) {
  Tensor a = iota({2, 3});
  EXPECT_TRUE(contiguous(a).same(a));
  Tensor t = transpose(a, 0, 1);
  Tensor c = contiguous(t);
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_FALSE(shares_storage(a, c));
  EXPECT_EQ(c.to_vector(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
}

TEST(Cast, ConvertsAndCastsTheGradientBack) {
  Tensor a = from_vector(std::vector<double>{1.5, -2.0, 1.0 / 3.0}, {3}, DType::F64);
  EXPECT_TRUE(cast(a, DType::F64).same(a));
  Tensor b = cast(a, DType::BF16);
  EXPECT_EQ(b.dtype(), DType::BF16);
  EXPECT_EQ(b.to_vector()[0], 1.5);
  EXPECT_NE(b.to_vector()[2], 1.0 / 3.0);  // rounded to 8 mantissa bits
  EXPECT_EQ(cast(from_vector(std::vector<double>{2.7, -1.2}, {2}), DType::I32).to_vector(),
            (std::vector<double>{2, -1}));
  a.requires_grad_(true);
  Tensor f = cast(a, DType::F32);
  ASSERT_TRUE(f.requires_grad());
  f.backward(from_vector(std::vector<double>{0.5, 2.0, -4.0}, {3}, DType::F32));
  ASSERT_TRUE(a.grad().defined());
  EXPECT_EQ(a.grad().dtype(), DType::F64);
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{0.5, 2.0, -4.0}));
  // Integer results carry no history.
  EXPECT_FALSE(cast(a, DType::I32).requires_grad());
}

TEST(ToDevice, SameDeviceIsIdentity) {
  Tensor a = iota({2, 2});
  EXPECT_TRUE(to_device(a, Device::cpu()).same(a));
  if (!cuda_available()) {
    EXPECT_THROW(to_device(a, Device::cuda(0)), Error);
  }
}

TEST(ShapeGrad, ViewsAndCopies) {
  Generator g(11);
  Tensor a = leaf({2, 3, 4}, g);
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& x) { return reshape(x[0], {4, -1}); }, {a}));
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& x) { return transpose(x[0], 0, 2); }, {a}));
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& x) { return permute(x[0], {2, 0, 1}); }, {a}));
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& x) { return slice(x[0], 2, 1, 3); }, {a}));
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& x) { return contiguous(transpose(x[0], 1, 2)); }, {a}));
  // Reshape of a non-contiguous view (the copying branch), then a slice of that.
  EXPECT_TRUE(gradcheck(
      [](const std::vector<Tensor>& x) {
        return slice(reshape(permute(x[0], {1, 0, 2}), {6, 4}), 0, 1, 5);
      },
      {a}));
  // The same input used twice through overlapping slices: gradients add.
  EXPECT_TRUE(gradcheck(
      [](const std::vector<Tensor>& x) {
        return concat({slice(x[0], 1, 0, 2), slice(x[0], 1, 1, 3)}, 2);
      },
      {a}));
}

// Slices of a recorded (non-leaf) tensor: the engine adds each slice's gradient into one buffer
// it owns for that tensor. Mixed with direct uses (whose gradient may arrive first and is shared
// with other nodes, so it must be copied, not written into) and overlapping windows.
TEST(ShapeGrad, SlicesOfARecordedTensorShareOneGradientBuffer) {
  Generator g(13);
  Tensor a = leaf({2, 3, 4}, g);
  // q, k, v style: three disjoint slices of one product, each used differently.
  EXPECT_TRUE(gradcheck(
      [](const std::vector<Tensor>& x) {
        Tensor y = mul_scalar(x[0], 3.0);
        return concat({mul(slice(y, 1, 0, 1), slice(y, 1, 1, 2)), exp(slice(y, 1, 2, 3))}, 1);
      },
      {a}));
  // Overlapping windows, a direct use of the whole tensor, and a slice used twice.
  EXPECT_TRUE(gradcheck(
      [](const std::vector<Tensor>& x) {
        Tensor y = tanh(x[0]);
        Tensor s = slice(y, 2, 1, 3);
        return concat({add(slice(y, 2, 0, 2), s), mul(s, s), slice(mul(y, y), 2, 0, 2)}, 2);
      },
      {a}));
  // Windows that leave gaps: the rest of the lazily allocated buffer must read as zeros.
  EXPECT_TRUE(gradcheck(
      [](const std::vector<Tensor>& x) {
        Tensor y = tanh(x[0]);
        return concat({slice(y, 2, 0, 1), slice(y, 2, 3, 4)}, 2);
      },
      {a}));
  // The direct use first in the backward order: its gradient is shared with the add's other
  // input, and the slice's contribution must not write into it.
  EXPECT_TRUE(gradcheck(
      [](const std::vector<Tensor>& x) {
        Tensor y = mul_scalar(x[0], 2.0);
        Tensor z = add(y, slice(concat({y, y}, 2), 2, 2, 6));
        return add(z, slice(y, 0, 0, 2));
      },
      {a}));
}

// q, k, v sliced from one tensor, whose gradients come back adjacent in one buffer laid out as that
// tensor: the engine takes the buffer as the tensor's gradient (no copy, no fill). In other
// arrangements (windows out of place, a slice used twice, a gap) it falls back to its own buffer;
// every case must give the finite-difference gradient.
TEST(ShapeGrad, WindowGradientsInPlaceAreTakenWithoutACopy) {
  Generator gen(14);
  Tensor a = leaf({3, 2, 4}, gen);
  const void *made = nullptr, *seen = nullptr;
  auto part = [](const Tensor& y, int64_t i) { return reshape(slice(y, 0, i, i + 1), {2, 4}); };
  using Order = std::array<int64_t, 3>;
  for (const Order& o : {Order{0, 1, 2}, Order{1, 0, 2}, Order{0, 1, 0}, Order{2, 2, 1}}) {
    SCOPED_TRACE(::testing::Message() << "slices " << o[0] << ", " << o[1] << ", " << o[2]);
    EXPECT_TRUE(gradcheck(
        [&](const std::vector<Tensor>& x) {
          Tensor y = observe(tanh(x[0]), &seen);
          return mul_add_adjacent(part(y, o[0]), part(y, o[1]), part(y, o[2]), &made);
        },
        {a}));
  }
  // In place: the observer sees the very buffer the op made.
  Tensor x = leaf({3, 2, 4}, gen);
  Tensor y = observe(mul_scalar(x, 2.0), &seen);
  sum(mul_add_adjacent(part(y, 0), part(y, 1), part(y, 2), &made)).backward();
  EXPECT_NE(made, nullptr);
  EXPECT_EQ(seen, made) << "the adjacent gradients were copied";
}

// One buffer only for likes that are back to back in one storage (q, k, v sliced from one tensor):
// separate tensors get separate ones, which their leaves adopt without a copy.
TEST(EmptyAdjacent, OneBufferOnlyForAdjacentLikes) {
  const Tensor y = iota({3, 2, 4});
  auto part = [&](int64_t i) { return reshape(slice(y, 0, i, i + 1), {2, 4}); };
  const std::vector<Tensor> in_place = empty_adjacent({part(0), part(1), part(2)});
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(shares_storage(in_place[0], in_place[size_t(i)]));
    EXPECT_EQ(in_place[size_t(i)].offset(), in_place[0].offset() + i * 8);
    EXPECT_EQ(in_place[size_t(i)].shape(), (Shape{2, 4}));
  }
  for (const std::vector<Tensor>& likes :
       {std::vector<Tensor>{part(1), part(0), part(2)}, std::vector<Tensor>{part(0), part(1), part(1)},
        std::vector<Tensor>{iota({2, 4}), iota({2, 4}), iota({2, 4})}}) {
    const std::vector<Tensor> apart = empty_adjacent(likes);
    EXPECT_FALSE(shares_storage(apart[0], apart[1]));
    EXPECT_FALSE(shares_storage(apart[1], apart[2]));
  }
}

TEST(ShapeGrad, ConcatAndSplit) {
  Generator g(12);
  Tensor a = leaf({2, 3}, g), b = leaf({2, 1}, g), c = leaf({2, 2}, g);
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& x) { return concat({x[0], x[1], x[2]}, 1); }, {a, b, c}));
  EXPECT_TRUE(gradcheck(
      [](const std::vector<Tensor>& x) {
        return concat({transpose(x[0], 0, 1), transpose(x[1], 0, 1)}, 0);
      },
      {a, c}));
  Tensor d = leaf({3, 7}, g);
  // One part unused (its gradient region stays zero), the others reordered.
  EXPECT_TRUE(gradcheck(
      [](const std::vector<Tensor>& x) {
        std::vector<Tensor> p = split(x[0], {2, 3, 2}, 1);
        return concat({p[2], p[0]}, 1);
      },
      {d}));
}

TEST(ShapeGrad, CastThroughF64) {
  Generator g(13);
  Tensor a = leaf({3, 2}, g);
  // f64 → f64 is the identity; f64 → f32 → f64 rounds, so compare the gradient directly.
  EXPECT_TRUE(gradcheck([](const std::vector<Tensor>& x) { return cast(x[0], DType::F64); }, {a}));
  a.zero_grad();
  Tensor y = cast(cast(a, DType::F32), DType::F64);
  y.backward(from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {3, 2}, DType::F64));
  EXPECT_EQ(a.grad().dtype(), DType::F64);
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
}

// ---- on every device: views, concat/split, cast and to_device against the f64 host reference ----
// These ops move values and never round them, so every dtype's result equals the reference
// exactly (the multiplications below are by powers of two).
namespace {

using sparrow::testing::DeviceTest;
using sparrow::testing::expect_matches_f64;
using sparrow::testing::float_dtypes;
using sparrow::testing::Fn;

class ShapeOnDevice : public DeviceTest {
 protected:
  // f on device() in each float dtype against the f64 host run, exactly, forward and gradients.
  void expect_exact(const std::string& what, const Fn& f, const std::vector<Shape>& shapes, uint64_t seed) {
    Generator g(seed);
    std::vector<Tensor> in;
    for (const Shape& s : shapes) in.push_back(randn(s, g, DType::F64));
    for (DType dt : float_dtypes(device())) expect_matches_f64(what, f, in, device(), dt, 0);
  }
};

}  // namespace

TEST_P(ShapeOnDevice, Views) {
  expect_exact(
      "reshape of a transpose",
      [](const std::vector<Tensor>& x) {
        return reshape(transpose(x[0], 0, 2), {-1, 6});
      },
      {{2, 3, 4}}, 31);
  expect_exact(
      "contiguous permute",
      [](const std::vector<Tensor>& x) {
        return permute(x[0], {2, 0, 1}).contiguous();
      },
      {{2, 3, 4}}, 32);
  expect_exact(
      "slice of a slice", [](const std::vector<Tensor>& x) { return slice(slice(x[0], 1, 1, 3), 2, -3, -1); },
      {{2, 3, 5}}, 33);
}

TEST_P(ShapeOnDevice, ConcatAndSplit) {
  expect_exact(
      "concat",
      [](const std::vector<Tensor>& x) {
        return concat({x[0], transpose(x[1], 0, 1), x[2]}, 1);
      },
      {{3, 2}, {4, 3}, {3, 1}}, 34);
  expect_exact(
      "split",
      [](const std::vector<Tensor>& x) {
        std::vector<Tensor> p = split(x[0], {1, 3, 2}, 0);
        return concat({p[2], p[0]}, 0);
      },
      {{6, 5}}, 35);
}

// Slices of a recorded tensor whose windows leave gaps: the engine's lazily allocated gradient
// buffer must have its gaps zero-filled. A NaN-filled block of the same size is freed first, so
// a caching allocator (the GPU's) hands that memory back and an unfilled gap would show as NaN.
TEST_P(ShapeOnDevice, SliceGradientsWithGapsAreZeroFilled) {
  for (int round = 0; round < 2; ++round) {
    for (DType dt : float_dtypes(device())) {
      Tensor poison = full({4, 6, 8}, std::nan(""), dt, device());
      (void)poison;
    }
    expect_exact(
        "slices with gaps",
        [](const std::vector<Tensor>& x) {
          Tensor y = mul_scalar(x[0], 4.0);
          return concat({slice(y, 1, 0, 1), mul_scalar(slice(y, 1, 4, 6), 2.0)}, 1);
        },
        {{4, 6, 8}}, 40 + round);
  }
}

TEST_P(ShapeOnDevice, CastAndToDevice) {
  const Device d = device();
  Generator g(36);
  Tensor a = randn({5, 7}, g);
  Tensor ad = to_device(a, d);
  EXPECT_EQ(ad.device(), d);
  const std::vector<double> av = a.to_vector();
  EXPECT_EQ(ad.to_vector(), av);
  // bf16 rounds to nearest even, as the host's bf16 type does.
  std::vector<double> want(av.size());
  for (size_t i = 0; i < av.size(); ++i) want[i] = double(float(bf16(float(av[i]))));
  EXPECT_EQ(cast(ad, DType::BF16).to_vector(), want);
  EXPECT_EQ(cast(ad, DType::F64).to_vector(), av);
  // Gradients go back to the input's device and dtype.
  Tensor x = randn({4}, g, DType::F64);
  x.requires_grad_(true);
  Tensor y = cast(to_device(x, d), DType::F32);
  y.backward(from_vector(std::vector<double>{1, -2, 3, -4}, {4}, DType::F32, d));
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(x.grad().device().is_cpu());
  EXPECT_EQ(x.grad().dtype(), DType::F64);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{1, -2, 3, -4}));
}

SPARROW_DEVICE_TESTS(ShapeOnDevice);
