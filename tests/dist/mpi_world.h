// What the multi-process suites share (they run under mpirun): one communicator over every
// rank, made once for the whole test binary, and the largest elementwise difference of two
// tensors (the "equals one process" checks).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "framework/dist/communicator.h"

namespace sparrow::testing {

inline dist::Communicator& world() {
  static std::unique_ptr<dist::Communicator> c = dist::make_communicator("mpi");
  return *c;
}

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

}  // namespace sparrow::testing
