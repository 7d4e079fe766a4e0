// embedding on the CPU: gathered rows, id range errors, and the weight gradient (repeated ids
// accumulate) against finite differences in f64 and a hand sum. Then on every device
// (EmbeddingOnDevice): gather and scatter-add against the f64 host reference, and bad ids.
#include <gtest/gtest.h>

#include "common/devices.h"
#include "common/gradcheck.h"

using namespace sparrow;
using sparrow::testing::gradcheck;
using sparrow::testing::leaf;

TEST(Embedding, GathersRows) {
  Tensor w = from_vector(std::vector<double>{0, 1, 10, 11, 20, 21, 30, 31}, {4, 2}, DType::F32);
  Tensor ids = from_ints({3, 0, 3, 1, 2, 2}, {2, 3});
  Tensor e = embedding(w, ids);
  EXPECT_EQ(e.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(e.to_vector(), (std::vector<double>{30, 31, 0, 1, 30, 31, 10, 11, 20, 21, 20, 21}));
  // Strided ids and a bf16 weight.
  Tensor ids_t = transpose(ids, 0, 1);  // [[3,1],[0,2],[3,2]]
  Tensor eb = embedding(cast(w, DType::BF16), ids_t);
  EXPECT_EQ(eb.dtype(), DType::BF16);
  EXPECT_EQ(eb.to_vector(), (std::vector<double>{30, 31, 10, 11, 0, 1, 20, 21, 30, 31, 20, 21}));
  EXPECT_EQ(embedding(w, from_ints({}, {0})).shape(), (Shape{0, 2}));
}

TEST(Embedding, OutOfRangeIdsThrowNamingTheId) {
  Tensor w = zeros({5, 3});
  for (int32_t bad : {5, -1, 1000}) {
    try {
      embedding(w, from_ints({0, 4, bad, 1}, {4}));
      FAIL() << "no throw for id " << bad;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("embedding"), std::string::npos) << msg;
      EXPECT_NE(msg.find("id " + std::to_string(bad)), std::string::npos) << msg;
    }
  }
}

TEST(Embedding, BadArgumentsThrow) {
  EXPECT_THROW(embedding(zeros({5}), from_ints({0}, {1})), Error);
  EXPECT_THROW(embedding(zeros({5, 2}), zeros({3})), Error);  // float ids
}

TEST(EmbeddingGrad, RepeatedIdsAccumulate) {
  Tensor w = zeros({4, 2}, DType::F64);
  w.requires_grad_(true);
  Tensor ids = from_ints({1, 3, 1, 1}, {2, 2});
  Tensor e = embedding(w, ids);
  e.backward(from_vector(std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2}, DType::F64));
  // Row 1 receives positions 0, 2, 3; row 3 position 1; rows 0 and 2 nothing.
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{0, 0, 1 + 5 + 7, 2 + 6 + 8, 0, 0, 3, 4}));
}

TEST(EmbeddingGrad, MatchesFiniteDifferences) {
  Generator g(14);
  Tensor w = leaf({6, 3}, g);
  Tensor ids = from_ints({5, 0, 5, 2, 2, 2, 4}, {7});
  EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& x) { return embedding(x[0], ids); }, {w}));
  Tensor ids2 = from_ints({1, 1, 0, 3, 3, 3}, {2, 3});
  EXPECT_TRUE(gradcheck([&](const std::vector<Tensor>& x) { return embedding(x[0], ids2); }, {w}));
}

TEST(EmbeddingGrad, Bf16AccumulatesInF32) {
  Tensor w = zeros({2, 1}, DType::BF16);
  w.requires_grad_(true);
  // 300 additions of 1 into one row: f32 accumulation is exact; bf16 accumulation would stall at 256.
  std::vector<int32_t> id(300, 1);
  Tensor e = embedding(w, from_ints(id, {300}));
  e.backward(from_vector(std::vector<double>(300, 1.0), {300, 1}, DType::BF16));
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{0, 300}));
}

// ---- on every device: the gather and the scatter-add against the f64 host reference -------------
namespace {

using sparrow::testing::DeviceTest;
using sparrow::testing::expect_matches_f64;
using sparrow::testing::float_dtypes;

class EmbeddingOnDevice : public DeviceTest {};

}  // namespace

TEST_P(EmbeddingOnDevice, ForwardAndBackward) {
  const Device d = device();
  Generator g(37);
  std::vector<int32_t> id;
  for (int i = 0; i < 600; ++i) id.push_back(static_cast<int32_t>(g.below(50)));  // many repeats
  Tensor ids = from_ints(id, {20, 30});
  for (DType dt : float_dtypes(d)) {
    Tensor w = randn({50, 24}, g, DType::F64).to(dt);
    // The gather moves rows: exact.
    EXPECT_EQ(embedding(w.to(d), ids.to(d)).to_vector(), embedding(w.to(DType::F64), ids).to_vector())
        << dtype_name(dt);
    // The scatter-add sums repeated ids in another order (atomics on the GPU): equal up to rounding.
    const double tol = dt == DType::F64 ? 1e-12 : dt == DType::F32 ? 1e-5 : 1e-2;
    expect_matches_f64(
        "embedding", [&ids](const std::vector<Tensor>& x) { return embedding(x[0], ids.to(x[0].device())); }, {w}, d,
        dt, tol);
  }
}

TEST_P(EmbeddingOnDevice, OutOfRangeIdThrows) {
  const Device d = device();
  Tensor w = zeros({5, 3}, DType::F32, d);
  try {
    embedding(w, from_ints({0, 1, 7, 2}, {4}, d));
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("id 7"), std::string::npos) << e.what();
  }
  EXPECT_THROW(embedding(w, from_ints({-3}, {1}, d)), Error);
  if (d.is_cuda()) {  // ids on another device
    EXPECT_THROW(embedding(w, from_ints({0}, {1})), Error);
  }
}

SPARROW_DEVICE_TESTS(EmbeddingOnDevice);
