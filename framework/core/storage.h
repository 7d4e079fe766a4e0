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
}  // namespace device_memory

}  // namespace sparrow
