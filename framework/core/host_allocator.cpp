#include "framework/core/host_allocator.h"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "framework/core/error.h"

namespace sparrow::host_memory {

namespace {

constexpr size_t kMinCached = size_t(1) << 20;

// The size a block of n bytes is allocated with: a multiple of 64 below 1 MiB; above, rounded
// up to an eighth of n's power of two (n in [2^k, 2^(k+1)) → steps of 2^(k−3)).
size_t size_class(size_t n) {
  n = (n + 63) / 64 * 64;
  if (n < kMinCached) return n;
  size_t top = size_t(1) << (63 - __builtin_clzll(n));
  const size_t step = top / 8;
  return (n + step - 1) / step * step;
}

size_t default_cap() {
  if (const char* v = std::getenv("SPARROW_HOST_CACHE_MB"))
    return static_cast<size_t>(std::strtoull(v, nullptr, 10)) << 20;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  const size_t phys = pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : 0;
  return std::min(phys / 8, size_t(4) << 30);
}

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // by size class
  size_t cached = 0;
  size_t cap = default_cap();

  // Blocks of 1 MiB and more always come from mmap, so a block leaving the cache really leaves
  // the resident set (glibc otherwise raises its mmap threshold after the first free and keeps
  // such blocks in the heap, where peak-memory measurements cannot see them go).
  Cache() { mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMinCached)); }

  void clear() {
    for (auto& [size, blocks] : free_blocks)
      for (void* p : blocks) std::free(p);
    free_blocks.clear();
    cached = 0;
  }
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may be freed during static teardown
  return *c;
}

// Set up before the first tensor exists (the mmap threshold must precede large allocations).
const bool kCacheReady = (cache(), true);

}  // namespace

void* allocate(size_t nbytes) {
  const size_t n = size_class(nbytes);
  Cache& c = cache();
  if (n >= kMinCached) {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free_blocks.find(n);
    if (it != c.free_blocks.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.cached -= n;
      return p;
    }
  }
  void* p = std::aligned_alloc(64, n);
  if (!p) {
    {
      std::lock_guard<std::mutex> lock(c.mu);
      c.clear();
    }
    p = std::aligned_alloc(64, n);
  }
  if (!p) fail("out of host memory allocating ", nbytes, " bytes");
  return p;
}

void release(void* p, size_t nbytes) {
  if (!p) return;
  const size_t n = size_class(nbytes);
  if (n >= kMinCached) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.cached + n <= c.cap) {
      c.free_blocks[n].push_back(p);
      c.cached += n;
      return;
    }
  }
  std::free(p);
}

void empty_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.clear();
}

size_t cached_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.cached;
}

}  // namespace sparrow::host_memory
