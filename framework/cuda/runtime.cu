#include <mutex>
#include <string>

#include "framework/cuda/runtime.h"

namespace sparrow::cuda {

void throw_cuda(cudaError_t e, const char* what, const char* file, int line) {
  fail("CUDA error ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ") in ", what, " at ", file, ":", line);
}

void throw_cublas(cublasStatus_t s, const char* what, const char* file, int line) {
  fail("cuBLAS error ", static_cast<int>(s), " in ", what, " at ", file, ":", line);
}

int current_device() {
  int d = 0;
  SPARROW_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

namespace {
struct PerDevice {
  cudaStream_t stream = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;
  int sms = 0;
  std::once_flag once;
};
PerDevice& per_device() {
  static PerDevice devs[64];
  int d = current_device();
  PerDevice& p = devs[d];
  std::call_once(p.once, [&] {
    SPARROW_CUDA_CHECK(cudaStreamCreateWithFlags(&p.stream, cudaStreamNonBlocking));
    SPARROW_CUBLAS_CHECK(cublasLtCreate(&p.lt));
    SPARROW_CUDA_CHECK(cudaMalloc(&p.workspace, 32u << 20));
    SPARROW_CUDA_CHECK(cudaDeviceGetAttribute(&p.sms, cudaDevAttrMultiProcessorCount, d));
  });
  return p;
}
}  // namespace

cudaStream_t stream() { return per_device().stream; }
cublasLtHandle_t cublaslt() { return per_device().lt; }
void* cublaslt_workspace(size_t* bytes) {
  *bytes = 32u << 20;
  return per_device().workspace;
}

int sm_count() { return per_device().sms; }

void synchronize() {
  SPARROW_CUDA_CHECK(cudaStreamSynchronize(stream()));
  SPARROW_CUDA_CHECK(cudaGetLastError());
}

}  // namespace sparrow::cuda
