#include "framework/core/storage.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "framework/core/error.h"
#include "framework/core/host_allocator.h"

namespace sparrow {

Storage::Storage(size_t n, Device d) : nbytes(n), device(d) {
  if (n == 0) return;
  if (d.is_cpu()) {
    // 64-byte alignment: full cache lines and aligned Eigen/AVX loads.
    data = host_memory::allocate(n);
  } else {
    data = device_memory::allocate(n, d);
  }
}

Storage::~Storage() {
  if (!data) return;
  if (device.is_cpu())
    host_memory::release(data, nbytes);
  else
    device_memory::release(data, nbytes, device);
}

}  // namespace sparrow
