// CPU-only build: the device services exist so that every call site links, and say clearly
// that this binary cannot reach a GPU.
#ifndef SPARROW_WITH_CUDA
#include <cstring>

#include "framework/core/error.h"
#include "framework/core/storage.h"

namespace sparrow {

bool cuda_available() { return false; }
int cuda_device_count() { return 0; }

namespace device_memory {
[[noreturn]] static void no_cuda(Device d) {
  fail("device ", d.str(), " requested, but Sparrow was built without CUDA (configure with SPARROW_CUDA=ON)");
}
void* allocate(size_t, Device d) { no_cuda(d); }
void release(void*, size_t, Device) {}
void copy(void* dst, Device dd, const void* src, Device sd, size_t n) {
  if (dd.is_cpu() && sd.is_cpu()) {
    std::memcpy(dst, src, n);
    return;
  }
  no_cuda(dd.is_cuda() ? dd : sd);
}
void fill_zero(void* p, size_t n, Device d) {
  if (!d.is_cpu()) no_cuda(d);
  std::memset(p, 0, n);
}
void synchronize(Device d) {
  if (!d.is_cpu()) no_cuda(d);
}
Stats stats(Device d) {
  if (!d.is_cpu()) no_cuda(d);
  return {};
}
}  // namespace device_memory
}  // namespace sparrow
#endif
