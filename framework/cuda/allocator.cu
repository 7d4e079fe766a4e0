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

using FreeList = std::multimap<size_t, void*>;  // size → block

struct PrivatePool {
  FreeList free_blocks;
  std::vector<std::pair<size_t, void*>> held;  // shared blocks freed while the pool routed
  size_t bytes = 0;                            // every block the pool owns
};

struct LiveBlock {
  size_t size;   // rounded
  PoolId owner;  // 0: the shared cache
};

struct DevicePool {
  FreeList free_blocks;  // the shared cache
  std::unordered_map<void*, LiveBlock> live;
  std::map<PoolId, PrivatePool> pools;
  PoolId routing = 0;
  AllocatorStats stats;
};

std::mutex g_mu;
PoolId g_next_pool = 1;
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

// Best fit among cached blocks no larger than 2× the request (avoids pinning huge blocks).
void* take(FreeList& list, size_t sz, size_t* got) {
  auto it = list.lower_bound(sz);
  if (it == list.end() || it->first > 2 * sz) return nullptr;
  void* p = it->second;
  *got = it->first;
  list.erase(it);
  return p;
}

}  // namespace

void* allocate(size_t nbytes, int device) {
  size_t sz = round_size(nbytes);
  std::lock_guard<std::mutex> lock(g_mu);
  DevicePool& pool = pools().at(device);
  PrivatePool* priv = pool.routing ? &pool.pools.at(pool.routing) : nullptr;
  size_t got = 0;
  void* p = priv ? take(priv->free_blocks, sz, &got) : nullptr;
  if (!p) {
    p = take(pool.free_blocks, sz, &got);
    if (p && priv) priv->bytes += got;  // moves from the shared cache into the pool
  }
  if (p) {
    sz = got;
  } else {
    SPARROW_CUDA_CHECK(cudaSetDevice(device));
    cudaError_t e = cudaMalloc(&p, sz);
    if (e == cudaErrorMemoryAllocation && !priv) {
      cudaGetLastError();
      free_cached(pool);  // give the cache back and try once more (not while capturing: cudaFree waits)
      e = cudaMalloc(&p, sz);
    }
    if (e != cudaSuccess && e != cudaErrorMemoryAllocation) {
      cudaGetLastError();
      fail("cudaMalloc of ", sz, " bytes on cuda:", device, " failed: ", cudaGetErrorName(e), " (",
           cudaGetErrorString(e), ")", priv ? " while capturing a CUDA graph" : "");
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      fail("out of GPU memory on cuda:", device, ": asked for ", nbytes, " bytes with ", pool.stats.allocated,
           " in use and ", free_b, " of ", total_b, " free");
    }
    pool.stats.reserved += sz;
    pool.stats.cuda_mallocs++;
    if (priv) priv->bytes += sz;
  }
  pool.live[p] = LiveBlock{sz, pool.routing};
  pool.stats.allocated += sz;
  if (pool.stats.allocated > pool.stats.peak_allocated) pool.stats.peak_allocated = pool.stats.allocated;
  return p;
}

void release(void* p, size_t, int device) {
  std::lock_guard<std::mutex> lock(g_mu);
  DevicePool& pool = pools().at(device);
  auto it = pool.live.find(p);
  if (it == pool.live.end()) return;
  const LiveBlock b = it->second;
  pool.live.erase(it);
  pool.stats.allocated -= b.size;
  if (b.owner) {
    pool.pools.at(b.owner).free_blocks.emplace(b.size, p);
  } else if (pool.routing) {
    PrivatePool& priv = pool.pools.at(pool.routing);
    priv.held.emplace_back(b.size, p);
    priv.bytes += b.size;
  } else {
    pool.free_blocks.emplace(b.size, p);
  }
}

PoolId create_private_pool(int device) {
  std::lock_guard<std::mutex> lock(g_mu);
  const PoolId id = g_next_pool++;
  pools().at(device).pools.emplace(id, PrivatePool{});
  return id;
}

void begin_pool_routing(int device, PoolId id) {
  std::lock_guard<std::mutex> lock(g_mu);
  DevicePool& pool = pools().at(device);
  SPARROW_CHECK(pool.routing == 0, "allocator: pool ", pool.routing, " already routes cuda:", device);
  SPARROW_CHECK(pool.pools.count(id), "allocator: no private pool ", id, " on cuda:", device);
  pool.routing = id;
}

void end_pool_routing(int device) {
  std::lock_guard<std::mutex> lock(g_mu);
  pools().at(device).routing = 0;
}

void destroy_private_pool(int device, PoolId id) {
  std::lock_guard<std::mutex> lock(g_mu);
  DevicePool& pool = pools().at(device);
  auto it = pool.pools.find(id);
  if (it == pool.pools.end()) return;
  if (pool.routing == id) pool.routing = 0;
  for (auto& [sz, p] : it->second.free_blocks) pool.free_blocks.emplace(sz, p);
  for (auto& [sz, p] : it->second.held) pool.free_blocks.emplace(sz, p);
  for (auto& [p, b] : pool.live)
    if (b.owner == id) b.owner = 0;
  pool.pools.erase(it);
}

size_t private_pool_bytes(int device, PoolId id) {
  std::lock_guard<std::mutex> lock(g_mu);
  const DevicePool& pool = pools().at(device);
  auto it = pool.pools.find(id);
  return it == pool.pools.end() ? 0 : it->second.bytes;
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

void synchronize(Device d) {
  if (d.is_cpu()) return;
  check_device(d);
  cuda::synchronize();
}

Stats stats(Device d) {
  if (d.is_cpu()) return {};
  check_device(d);
  const cuda::AllocatorStats a = cuda::allocator_stats(d.index);
  size_t free_b = 0, total_b = 0;
  SPARROW_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return {a.allocated, a.reserved, a.peak_allocated, a.cuda_mallocs, free_b};
}

}  // namespace device_memory
}  // namespace sparrow
