// What the multi-process suites share (they run under mpirun): one communicator over every
// rank per engine, made once for the whole test binary; the device-parameterised fixture
// (the same body on the host over MPI and on one GPU per rank over NCCL); and the largest
// elementwise difference of two tensors (the "equals one process" checks).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>

#include "common/devices.h"
#include "framework/dist/communicator.h"

namespace sparrow::testing {

inline dist::Communicator& world() {
  static std::unique_ptr<dist::Communicator> c = dist::make_communicator("mpi");
  return *c;
}

// The communicator for tensors of kind d: MPI for the host, NCCL for GPUs (one per rank,
// cuda:<local rank>).
inline dist::Communicator& world_on(Device d) {
  if (d.is_cpu()) return world();
  static std::unique_ptr<dist::Communicator> c = dist::make_communicator("nccl");
  return *c;
}

#ifdef SPARROW_WITH_NCCL
#define SPARROW_BUILT_WITH_NCCL true
#else
#define SPARROW_BUILT_WITH_NCCL false
#endif

// TEST_P(Suite, Name) on a fixture deriving DistDeviceTest, with SPARROW_DEVICE_TESTS(Suite)
// (common/devices.h) after it: instances .../cpu (MPI, host tensors) and .../cuda (NCCL, this rank's GPU). The cuda
// instance needs NCCL in the build and a GPU for each rank on this host; elsewhere every rank
// skips it alike (the same build and host), so no rank waits on a collective the others skipped.
class DistDeviceTest : public ::testing::TestWithParam<Device> {
 protected:
  void SetUp() override {
    if (!GetParam().is_cuda()) return;
    if (!SPARROW_BUILT_WITH_NCCL)
      GTEST_SKIP() << "built without NCCL: the cuda instance runs on a multi-GPU host (scripts/gpu-dist-check.sh)";
    const int local_ranks = std::max(
        1, std::atoi(std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE") != nullptr ? std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE")
                                                                          : "0"));
    if (cuda_device_count() < local_ranks)
      GTEST_SKIP() << cuda_device_count() << " GPUs visible for " << local_ranks
                   << " ranks on this host: the cuda instance needs one GPU per rank";
  }
  // This rank's device: the host, or cuda:<local rank>.
  Device device() const { return GetParam().is_cpu() ? Device::cpu() : Device::cuda(dist::launched_local_rank()); }
  dist::Communicator& comm() const { return world_on(GetParam()); }
};

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

}  // namespace sparrow::testing
