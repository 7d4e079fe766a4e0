// "Every element written", for tests of GPU kernels: poison_allocator fills the caching
// allocator with blocks of the given byte sizes whose bytes are all 0xFF (NaN in bf16, f32 and
// f64) and hands them back, so the outputs the kernel allocates next land in poisoned memory;
// an element it never writes stays NaN and fails the test's finiteness check (count_nonfinite).
// On the CPU, and in a build without CUDA, it does nothing.
#pragma once
#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

#include "framework/core/device.h"

#ifdef SPARROW_WITH_CUDA
#include <cuda_runtime.h>

#include "framework/cuda/allocator.h"
#include "framework/cuda/runtime.h"
#endif

namespace sparrow::testing {

// 4 blocks of each size, so that every output of one size finds one.
inline void poison_allocator(Device d, const std::vector<size_t>& sizes) {
#ifdef SPARROW_WITH_CUDA
  if (!d.is_cuda()) return;
  std::vector<std::pair<void*, size_t>> blocks;
  for (size_t s : sizes)
    for (int c = 0; c < 4; ++c) {
      void* p = sparrow::cuda::allocate(s, d.index);
      SPARROW_CUDA_CHECK(cudaMemsetAsync(p, 0xFF, s, sparrow::cuda::stream()));
      blocks.emplace_back(p, s);
    }
  sparrow::cuda::synchronize();
  for (auto& [p, s] : blocks) sparrow::cuda::release(p, s, d.index);
#else
  (void)d;
  (void)sizes;
#endif
}

inline size_t count_nonfinite(const std::vector<double>& v) {
  size_t n = 0;
  for (double x : v) n += !std::isfinite(x);
  return n;
}

}  // namespace sparrow::testing
