#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "framework/core/storage.h"
#include "framework/cuda/allocator.h"
#include "framework/cuda/runtime.h"

namespace sparrow::cuda {
namespace {

constexpr size_t kSmall = 1 << 20;  // up to 1 MiB: 512-byte granules; beyond: 2 MiB granules

size_t round_size(size_t n) {
  if (n <= kSmall) return (n + 511) / 512 * 512;
  return (n + (2u << 20) - 1) / (2u << 20) * (2u << 20);
}

struct DevicePool {
  std::multimap<size_t, void*> free_blocks;          // size → block
  std::unordered_map<void*, size_t> live;            // block → rounded size
  AllocatorStats stats;
};

std::mutex g_mu;
std::vector<DevicePool>& pools() {
  static std::vector<DevicePool> p(64);
  return p;
}

void free_cached(DevicePool& pool) {
  for (auto& [sz, p] : pool.free_blocks) {
    cudaFree(p);
    pool.stats.reserved -= sz;
  }
  pool.free_blocks.clear();
}

}  // namespace

void* allocate(size_t nbytes, int device) {
  const size_t sz = round_size(nbytes);
  std::lock_guard<std::mutex> lock(g_mu);
  DevicePool& pool = pools().at(device);
  // Best fit among cached blocks no larger than 2× the request (avoids pinning huge blocks).
  auto it = pool.free_blocks.lower_bound(sz);
  void* p = nullptr;
  if (it != pool.free_blocks.end() && it->first <= 2 * sz) {
    p = it->second;
    pool.live[p] = it->first;
    pool.stats.allocated += it->first;
    pool.free_blocks.erase(it);
  } else {
    SPARROW_CUDA_CHECK(cudaSetDevice(device));
    cudaError_t e = cudaMalloc(&p, sz);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      free_cached(pool);  // give the cache back and try once more
      e = cudaMalloc(&p, sz);
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      fail("out of GPU memory on cuda:", device, ": asked for ", nbytes, " bytes with ", pool.stats.allocated,
           " in use and ", free_b, " of ", total_b, " free");
    }
    pool.live[p] = sz;
    pool.stats.allocated += sz;
    pool.stats.reserved += sz;
    pool.stats.cuda_mallocs++;
  }
  if (pool.stats.allocated > pool.stats.peak_allocated) pool.stats.peak_allocated = pool.stats.allocated;
  return p;
}

void release(void* p, size_t, int device) {
  std::lock_guard<std::mutex> lock(g_mu);
  DevicePool& pool = pools().at(device);
  auto it = pool.live.find(p);
  if (it == pool.live.end()) return;
  pool.stats.allocated -= it->second;
  pool.free_blocks.emplace(it->second, p);
  pool.live.erase(it);
}

AllocatorStats allocator_stats(int device) {
  std::lock_guard<std::mutex> lock(g_mu);
  return pools().at(device).stats;
}

void reset_peak(int device) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto& s = pools().at(device).stats;
  s.peak_allocated = s.allocated;
}

void empty_cache(int device) {
  synchronize();
  std::lock_guard<std::mutex> lock(g_mu);
  free_cached(pools().at(device));
}

}  // namespace sparrow::cuda

// --- the device services that Storage and copy_ use -------------------------------------------
namespace sparrow {

bool cuda_available() { return cuda_device_count() > 0; }

int cuda_device_count() {
  static int n = [] {
    int c = 0;
    if (cudaGetDeviceCount(&c) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return c;
  }();
  return n;
}

namespace device_memory {

static void check_device(Device d) {
  SPARROW_CHECK(d.index < cuda_device_count(), "device ", d.str(), " requested but ", cuda_device_count(),
                " CUDA device(s) are visible");
}

void* allocate(size_t n, Device d) {
  check_device(d);
  return cuda::allocate(n, d.index);
}
void release(void* p, size_t n, Device d) { cuda::release(p, n, d.index); }

void copy(void* dst, Device dd, const void* src, Device sd, size_t n) {
  if (dd.is_cpu() && sd.is_cpu()) {
    std::memcpy(dst, src, n);
    return;
  }
  // Synchronous with respect to the host: copies to the host must be complete on return, and
  // copies from pageable host memory must not outlive the caller's buffer.
  SPARROW_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDefault, cuda::stream()));
  SPARROW_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
}

void fill_zero(void* p, size_t n, Device d) {
  if (d.is_cpu()) {
    std::memset(p, 0, n);
    return;
  }
  SPARROW_CUDA_CHECK(cudaMemsetAsync(p, 0, n, cuda::stream()));
}

}  // namespace device_memory
}  // namespace sparrow
