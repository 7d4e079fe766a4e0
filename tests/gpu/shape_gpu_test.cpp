// View ops, concat/split, cast, to_device and embedding on CUDA against the CPU (values and
// gradients). Skips where no GPU is visible.
#include <gtest/gtest.h>

#include <cmath>

#include "common/gradcheck.h"

using namespace sparrow;
using sparrow::testing::rel_error;

namespace {
const Device kGpu = Device::cuda(0);

// Runs f on CPU and GPU copies of the same f64 inputs, backpropagates the same weights, and
// compares outputs and every input gradient exactly (these ops move values, never round them).
void expect_same_on_both(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Shape>& shapes,
                         uint64_t seed) {
  Generator g(seed);
  std::vector<Tensor> cpu, gpu;
  for (const Shape& s : shapes) {
    Tensor t = randn(s, g, DType::F64);
    Tensor tg = t.to(kGpu).detach();
    t.requires_grad_(true);
    tg.requires_grad_(true);
    cpu.push_back(t);
    gpu.push_back(tg);
  }
  Tensor oc = f(cpu), og = f(gpu);
  ASSERT_TRUE(og.is_cuda());
  ASSERT_EQ(oc.shape(), og.shape());
  EXPECT_EQ(og.to_vector(), oc.to_vector());
  Tensor w = randn(oc.shape(), g, DType::F64);
  oc.backward(w);
  og.backward(w.to(kGpu));
  for (size_t i = 0; i < cpu.size(); ++i) {
    ASSERT_TRUE(gpu[i].grad().defined()) << "input " << i;
    EXPECT_TRUE(gpu[i].grad().is_cuda());
    EXPECT_EQ(gpu[i].grad().to_vector(), cpu[i].grad().to_vector()) << "input " << i;
  }
}
}  // namespace

TEST(ShapeGpu, ViewsMatchCpu) {
  SPARROW_REQUIRE_GPU();
  expect_same_on_both(
      [](const std::vector<Tensor>& x) {
        return reshape(transpose(x[0], 0, 2), {-1, 6});
      },
      {{2, 3, 4}}, 31);
  expect_same_on_both(
      [](const std::vector<Tensor>& x) {
        return permute(x[0], {2, 0, 1}).contiguous();
      },
      {{2, 3, 4}}, 32);
  expect_same_on_both([](const std::vector<Tensor>& x) { return slice(slice(x[0], 1, 1, 3), 2, -3, -1); }, {{2, 3, 5}},
                      33);
}

TEST(ShapeGpu, ConcatAndSplitMatchCpu) {
  SPARROW_REQUIRE_GPU();
  expect_same_on_both(
      [](const std::vector<Tensor>& x) {
        return concat({x[0], transpose(x[1], 0, 1), x[2]}, 1);
      },
      {{3, 2}, {4, 3}, {3, 1}}, 34);
  expect_same_on_both(
      [](const std::vector<Tensor>& x) {
        std::vector<Tensor> p = split(x[0], {1, 3, 2}, 0);
        return concat({p[2], p[0]}, 0);
      },
      {{6, 5}}, 35);
}

// Slices of a recorded tensor whose windows leave gaps: the engine's lazily allocated gradient
// buffer must have its gaps zero-filled. A NaN-filled block of the same size is freed first, so
// the caching allocator hands that memory back and an unfilled gap would show as NaN.
TEST(ShapeGpu, SliceGradientsWithGapsAreZeroFilled) {
  SPARROW_REQUIRE_GPU();
  for (int round = 0; round < 2; ++round) {
    {
      Tensor poison = full({4, 6, 8}, std::nan(""), DType::F64, kGpu);
      (void)poison;
    }
    expect_same_on_both(
        [](const std::vector<Tensor>& x) {
          Tensor y = mul_scalar(x[0], 3.0);
          return concat({slice(y, 1, 0, 1), mul_scalar(slice(y, 1, 4, 6), 2.0)}, 1);
        },
        {{4, 6, 8}}, 40 + round);
  }
}

TEST(ShapeGpu, CastAndToDevice) {
  SPARROW_REQUIRE_GPU();
  Generator g(36);
  Tensor a = randn({5, 7}, g);
  Tensor ag = to_device(a, kGpu);
  EXPECT_TRUE(ag.is_cuda());
  EXPECT_EQ(ag.to_vector(), a.to_vector());
  EXPECT_EQ(cast(ag, DType::BF16).to_vector(), cast(a, DType::BF16).to_vector());
  EXPECT_EQ(cast(ag, DType::F64).to_vector(), a.to_vector());
  // Gradients go back to the input's device and dtype.
  Tensor x = randn({4}, g, DType::F64);
  x.requires_grad_(true);
  Tensor y = cast(to_device(x, kGpu), DType::F32);
  y.backward(from_vector(std::vector<double>{1, -2, 3, -4}, {4}, DType::F32, kGpu));
  ASSERT_TRUE(x.grad().defined());
  EXPECT_FALSE(x.grad().is_cuda());
  EXPECT_EQ(x.grad().dtype(), DType::F64);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{1, -2, 3, -4}));
}

TEST(EmbeddingGpu, ForwardAndBackwardMatchCpu) {
  SPARROW_REQUIRE_GPU();
  Generator g(37);
  std::vector<int32_t> id;
  for (int i = 0; i < 600; ++i) id.push_back(static_cast<int32_t>(g.below(50)));  // many repeats
  Tensor ids = from_ints(id, {20, 30});
  for (DType t : {DType::F32, DType::F64, DType::BF16}) {
    Tensor w = randn({50, 24}, g, t);
    Tensor wg = w.to(kGpu).detach();
    w.requires_grad_(true);
    wg.requires_grad_(true);
    Tensor oc = embedding(w, ids), og = embedding(wg, ids.to(kGpu));
    EXPECT_EQ(og.to_vector(), oc.to_vector()) << dtype_name(t);
    Tensor gout = randn(oc.shape(), g, t);
    oc.backward(gout);
    og.backward(gout.to(kGpu));
    // Atomics add in a different order than the CPU loop: equal up to rounding.
    const double tol = t == DType::F64 ? 1e-12 : t == DType::F32 ? 1e-5 : 1e-2;
    EXPECT_LT(rel_error(wg.grad(), w.grad()), tol) << dtype_name(t);
  }
}

TEST(EmbeddingGpu, OutOfRangeIdThrows) {
  SPARROW_REQUIRE_GPU();
  Tensor w = zeros({5, 3}, DType::F32, kGpu);
  try {
    embedding(w, from_ints({0, 1, 7, 2}, {4}, kGpu));
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("id 7"), std::string::npos) << e.what();
  }
  EXPECT_THROW(embedding(w, from_ints({-3}, {1}, kGpu)), Error);
  EXPECT_THROW(embedding(w, from_ints({0}, {1})), Error);  // ids on another device
}
