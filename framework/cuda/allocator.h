// Caching device allocator. cudaMalloc/cudaFree synchronize the device and cost tens of µs, so
// blocks are kept in per-size free lists and reused: after the first training step no step
// calls cudaMalloc. Sizes round up to 512 B (small) or 2 MiB (large) so blocks are reusable
// across nearby sizes. All work is on one stream per device, so a freed block is safe to hand
// out again immediately (later kernels on the stream run after earlier ones).
#pragma once
#include <cstddef>

namespace sparrow::cuda {

struct AllocatorStats {
  size_t allocated = 0;      // bytes handed out now
  size_t reserved = 0;       // bytes held from cudaMalloc (allocated + cached)
  size_t peak_allocated = 0;
  size_t cuda_mallocs = 0;   // cudaMalloc calls so far
};

void* allocate(size_t nbytes, int device);
void release(void* p, size_t nbytes, int device);
AllocatorStats allocator_stats(int device);
void reset_peak(int device);
// Returns every cached (unused) block to the driver.
void empty_cache(int device);

}  // namespace sparrow::cuda
