// Caching device allocator. cudaMalloc/cudaFree synchronize the device and cost tens of µs, so
// blocks are kept in per-size free lists and reused: after the first training step no step
// calls cudaMalloc. Sizes round up to 512 B (small) or 2 MiB (large) so blocks are reusable
// across nearby sizes. All work is on one stream per device, so a freed block is safe to hand
// out again immediately (later kernels on the stream run after earlier ones).
//
// Private pools serve captured CUDA graphs (cuda/graph.h). A graph replays its kernels on the
// addresses they were captured with, so while it lives no other work may be handed those blocks:
// while a pool routes a device's allocations (during a capture), they come from the pool's own
// free blocks, then from blocks moved over from the shared cache, then from cudaMalloc, and they
// return to the pool. A shared block freed during the capture is held by the pool too (the graph
// touched it before the free). Destroying the pool gives every block back to the shared cache.
#pragma once
#include <cstddef>
#include <cstdint>

namespace sparrow::cuda {

struct AllocatorStats {
  size_t allocated = 0;  // bytes handed out now
  size_t reserved = 0;   // bytes held from cudaMalloc (allocated + cached)
  size_t peak_allocated = 0;
  size_t cuda_mallocs = 0;  // cudaMalloc calls so far
};

void* allocate(size_t nbytes, int device);
void release(void* p, size_t nbytes, int device);
AllocatorStats allocator_stats(int device);
void reset_peak(int device);
// Returns every cached (unused) block of the shared cache to the driver (private pools keep theirs).
void empty_cache(int device);

using PoolId = uint64_t;  // 0 is the shared cache
PoolId create_private_pool(int device);
// Routes the device's allocations and releases through `pool` until end_pool_routing (one at a time).
void begin_pool_routing(int device, PoolId pool);
void end_pool_routing(int device);
// Blocks still in use stay in use and are released to the shared cache later.
void destroy_private_pool(int device, PoolId pool);
// Bytes the pool holds (in use or free), for logs.
size_t private_pool_bytes(int device, PoolId pool);

}  // namespace sparrow::cuda
