// dist::Communicator over MPI, run under `mpirun -np 2` and `-np 4` (CMakeLists.txt): every
// collective and the ring exchange against values each rank can compute on its own.
#include <gtest/gtest.h>

#include <numeric>

#include "dist/mpi_world.h"
#include "framework/dist/communicator.h"
#include "framework/ops/ops.h"

namespace sparrow::dist {
namespace {

using sparrow::testing::world;

// Rank r's values: r·100 + i, distinct across ranks and elements.
Tensor rank_values(int r, int64_t n, DType t) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = r * 100.0 + static_cast<double>(i);
  return from_vector(v, {n}, t);
}

TEST(Communicator, SizeAndRankMatchTheLauncher) {
  EXPECT_EQ(world().size(), launched_world_size());
  EXPECT_EQ(world().rank(), launched_rank());
  EXPECT_GE(world().size(), 2) << "run this suite under mpirun -np 2 or more";
  EXPECT_EQ(world().backend(), "mpi");
}

TEST(Communicator, AllReduceSumsAndMaxesEveryDtype) {
  const int P = world().size(), r = world().rank();
  for (DType t : {DType::F32, DType::F64, DType::BF16, DType::I32}) {
    const int64_t n = 37;
    Tensor sum = rank_values(r, n, t), max = rank_values(r, n, t);
    auto ws = world().all_reduce(sum, ReduceOp::Sum);
    auto wm = world().all_reduce(max, ReduceOp::Max);  // two in flight at once
    ws->wait();
    wm->wait();
    const std::vector<double> s = sum.to_vector(), m = max.to_vector();
    for (int64_t i = 0; i < n; ++i) {
      // Σ_r (100 r + i) = 100·P(P−1)/2 + P·i: exact in f32/f64/i32; bf16 (8 significant bits) rounds.
      const double want = 100.0 * P * (P - 1) / 2 + static_cast<double>(P * i);
      const double tol = t == DType::BF16 ? want * 1.0 / 64 : 0;
      EXPECT_NEAR(s[i], want, tol) << dtype_name(t) << " element " << i;
      EXPECT_NEAR(m[i], 100.0 * (P - 1) + static_cast<double>(i), t == DType::BF16 ? 4 : 0) << dtype_name(t);
    }
  }
}

TEST(Communicator, ReduceScatterGivesEachRankItsChunkOfTheSum) {
  const int P = world().size(), r = world().rank();
  const int64_t k = 5;
  Tensor in = rank_values(r, k * P, DType::F32), out = zeros({k});
  world().reduce_scatter(in, out)->wait();
  const std::vector<double> o = out.to_vector();
  for (int64_t i = 0; i < k; ++i) EXPECT_EQ(o[i], 100.0 * P * (P - 1) / 2 + static_cast<double>(P * (r * k + i)));
}

TEST(Communicator, AllGatherConcatenatesInRankOrder) {
  const int P = world().size(), r = world().rank();
  const int64_t k = 3;
  Tensor in = rank_values(r, k, DType::F64), out = zeros({k * P}, DType::F64);
  world().all_gather(in, out)->wait();
  const std::vector<double> o = out.to_vector();
  for (int q = 0; q < P; ++q)
    for (int64_t i = 0; i < k; ++i) EXPECT_EQ(o[q * k + i], 100.0 * q + static_cast<double>(i));
}

TEST(Communicator, BroadcastCopiesTheRootsTensor) {
  const int P = world().size(), r = world().rank();
  const int root = P - 1;
  Tensor t = rank_values(r, 9, DType::I32);
  world().broadcast(t, root)->wait();
  const std::vector<double> v = t.to_vector();
  for (int64_t i = 0; i < 9; ++i) EXPECT_EQ(v[i], 100.0 * root + static_cast<double>(i));
}

TEST(Communicator, RingExchangePassesEveryShardAroundOnce) {
  // What ring attention does: P−1 steps, each rank sends what it holds to its successor while
  // receiving its predecessor's; after the steps every rank has seen every shard.
  const int P = world().size(), r = world().rank();
  const int next = (r + 1) % P, prev = (r + P - 1) % P;
  Tensor held = rank_values(r, 64, DType::F32);
  std::vector<int> seen{static_cast<int>(held.to_vector()[0] / 100)};
  for (int step = 1; step < P; ++step) {
    Tensor incoming = empty({64}, DType::F32);
    auto rw = world().recv(incoming, prev);
    auto sw = world().send(held, next);
    rw->wait();
    sw->wait();
    held = incoming;
    seen.push_back(static_cast<int>(held.to_vector()[0] / 100));
  }
  std::vector<int> want(P);
  for (int s = 0; s < P; ++s) want[s] = (r - s + P) % P;
  EXPECT_EQ(seen, want);
  EXPECT_EQ(held.to_vector()[63], 100.0 * next + 63);
}

TEST(Communicator, BadTensorsAreRefusedBeforeAnyExchange) {
  // Every rank throws the same error before calling MPI, so nobody waits on a peer.
  Tensor m = zeros({4, 4});
  Tensor strided = m.transpose(0, 1);
  EXPECT_THROW(world().all_reduce(strided), Error);
  Tensor out = zeros({3});
  EXPECT_THROW(world().reduce_scatter(zeros({4}), out), Error);  // 4 is not 3·P
  EXPECT_THROW(world().send(zeros({1}), world().size()), Error);
  world().barrier();
}

TEST(Communicator, SplitMakesGroupsThatReduceAmongThemselves) {
  // Even and odd ranks: each group sums only its own members' ranks.
  const int P = world().size(), r = world().rank();
  auto group = world().split(r % 2, r);
  EXPECT_EQ(group->size(), (P + 1 - r % 2) / 2);
  EXPECT_EQ(group->rank(), r / 2);
  Tensor t = from_vector(std::vector<double>{double(r)}, {1}, DType::F64);
  group->all_reduce(t)->wait();
  double want = 0;
  for (int q = r % 2; q < P; q += 2) want += q;
  EXPECT_EQ(t.item(), want);
}

}  // namespace
}  // namespace sparrow::dist
