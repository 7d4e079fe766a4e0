// A block of memory on one device, shared by every tensor view over it. Both devices' blocks come
// from caching allocators (framework/core/host_allocator.cpp, framework/cuda/allocator.cu), so
// freeing and allocating again inside a step is cheap.
#pragma once
#include <cstddef>
#include <memory>

#include "framework/core/device.h"

namespace sparrow {

struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

// Byte-level memory services. The CUDA build implements them in framework/cuda/; the CPU-only
// build's versions (framework/core/device_memory_cpu_only.cpp) throw a clear "built without
// CUDA" error.
namespace device_memory {
void* allocate(size_t nbytes, Device d);
void release(void* p, size_t nbytes, Device d);
// Copies nbytes between any two devices (host↔device, device↔device); synchronous w.r.t. host.
void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes);
void fill_zero(void* p, size_t nbytes, Device d);
// Waits for all work queued on the device and throws any pending asynchronous error (CPU: no-op).
void synchronize(Device d);
// The caching allocator's counters for a CUDA device and the driver's free memory; zero for the CPU
// (host memory is read from /proc by its users).
struct Stats {
  size_t allocated = 0;       // bytes handed out now
  size_t reserved = 0;        // bytes held from the driver (allocated + cached)
  size_t peak_allocated = 0;  // since the last reset
  size_t mallocs = 0;         // driver allocations so far (none in a steady training step)
  size_t driver_free = 0;     // bytes the driver can still hand out
};
Stats stats(Device d);
}  // namespace device_memory

}  // namespace sparrow
