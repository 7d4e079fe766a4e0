// CUDA plumbing shared by every kernel file: checked calls, the stream all work goes on, the
// cuBLASLt handle and its workspace. Included only from .cu files and CUDA-only .cpp files.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include "framework/core/error.h"

namespace sparrow::cuda {

[[noreturn]] void throw_cuda(cudaError_t e, const char* what, const char* file, int line);
[[noreturn]] void throw_cublas(cublasStatus_t s, const char* what, const char* file, int line);

// The stream every Sparrow kernel and library call is issued on (per device, created once).
// One stream keeps ops ordered without events; the caching allocator relies on that.
cudaStream_t stream();
cublasLtHandle_t cublaslt();
// Workspace for cuBLASLt heuristics (32 MiB, allocated once per device).
void* cublaslt_workspace(size_t* bytes);
// Synchronizes the stream and throws on any pending asynchronous error.
void synchronize();
int current_device();
// Streaming multiprocessors of the current device (the size of a persistent grid).
int sm_count();

// Launch geometry for an elementwise kernel over n elements (grid-stride loops).
inline unsigned grid_for(int64_t n, int threads = 256) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 8 ? 65535 * 8 : b));
}

}  // namespace sparrow::cuda

#define SPARROW_CUDA_CHECK(call)                                                       \
  do {                                                                                 \
    cudaError_t e_ = (call);                                                           \
    if (e_ != cudaSuccess) ::sparrow::cuda::throw_cuda(e_, #call, __FILE__, __LINE__); \
  } while (0)

// After every kernel launch: catches bad launch configurations at once.
#define SPARROW_CUDA_LAUNCH_CHECK() SPARROW_CUDA_CHECK(cudaGetLastError())

#define SPARROW_CUBLAS_CHECK(call)                                                                 \
  do {                                                                                             \
    cublasStatus_t s_ = (call);                                                                    \
    if (s_ != CUBLAS_STATUS_SUCCESS) ::sparrow::cuda::throw_cublas(s_, #call, __FILE__, __LINE__); \
  } while (0)
