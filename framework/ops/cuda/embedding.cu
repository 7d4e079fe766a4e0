#include <climits>

#include "framework/cuda/runtime.h"
#include "framework/ops/cuda/embedding.h"
#include "framework/ops/cuda/strided.cuh"

namespace sparrow::cuda {

namespace {

__global__ void first_bad_kernel(const int32_t* ids, int64_t n, int64_t v, int* first) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    if (ids[i] < 0 || ids[i] >= v) atomicMin(first, static_cast<int>(i));
}

template <class T>
__global__ void gather_kernel(const T* w, const int32_t* ids, T* out, int64_t n, int64_t d) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n * d; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / d, c = e - i * d;
    out[e] = w[static_cast<int64_t>(ids[i]) * d + c];
  }
}

// acc is float for f32/bf16 gradients and double for f64 (native atomicAdd for both).
template <class T, class A>
__global__ void scatter_add_kernel(const T* g, const int32_t* ids, A* acc, int64_t n, int64_t d) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n * d; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / d, c = e - i * d;
    atomicAdd(acc + static_cast<int64_t>(ids[i]) * d + c, static_cast<A>(to_f(g[e])));
  }
}

}  // namespace

int64_t embedding_first_bad_id(const Tensor& ids, int64_t v) {
  const int64_t n = ids.numel();
  SPARROW_CHECK(n < INT_MAX, "embedding: ", n, " ids exceed the range check's 2^31 limit");
  Tensor first = empty({1}, DType::I32, ids.device());
  // 0x7f bytes make INT_MAX-ish: larger than any valid position.
  SPARROW_CUDA_CHECK(cudaMemsetAsync(first.data_ptr(), 0x7f, sizeof(int), stream()));
  first_bad_kernel<<<grid_for(n), 256, 0, stream()>>>(ids.data<int32_t>(), n, v, first.data<int32_t>());
  SPARROW_CUDA_LAUNCH_CHECK();
  int host = 0;
  SPARROW_CUDA_CHECK(cudaMemcpyAsync(&host, first.data_ptr(), sizeof(int), cudaMemcpyDeviceToHost, stream()));
  SPARROW_CUDA_CHECK(cudaStreamSynchronize(stream()));
  return host < n ? host : -1;
}

void embedding_forward(const Tensor& weight, const Tensor& ids, Tensor& out) {
  const int64_t n = ids.numel(), d = weight.size(1);
  if (n * d == 0) return;
  SPARROW_CUDA_FLOAT_DISPATCH(weight.dtype(), "embedding", [&] {
    gather_kernel<<<grid_for(n * d), 256, 0, stream()>>>(static_cast<const T*>(weight.data_ptr()),
                                                          ids.data<int32_t>(), static_cast<T*>(out.data_ptr()), n, d);
    SPARROW_CUDA_LAUNCH_CHECK();
  });
}

void embedding_backward(const Tensor& grad_out, const Tensor& ids, Tensor& grad_weight) {
  const int64_t n = ids.numel(), d = grad_weight.size(1);
  if (n * d == 0) return;
  const int32_t* id = ids.data<int32_t>();
  switch (grad_weight.dtype()) {
    case DType::F32:
      scatter_add_kernel<<<grid_for(n * d), 256, 0, stream()>>>(grad_out.data<float>(), id,
                                                                grad_weight.data<float>(), n, d);
      SPARROW_CUDA_LAUNCH_CHECK();
      return;
    case DType::F64:
      scatter_add_kernel<<<grid_for(n * d), 256, 0, stream()>>>(grad_out.data<double>(), id,
                                                                grad_weight.data<double>(), n, d);
      SPARROW_CUDA_LAUNCH_CHECK();
      return;
    case DType::BF16: {
      Tensor acc = zeros(grad_weight.shape(), DType::F32, grad_weight.device());
      scatter_add_kernel<<<grid_for(n * d), 256, 0, stream()>>>(
          static_cast<const __nv_bfloat16*>(grad_out.data_ptr()), id, acc.data<float>(), n, d);
      SPARROW_CUDA_LAUNCH_CHECK();
      copy_(grad_weight, acc);
      return;
    }
    default: fail("embedding backward (cuda): unsupported dtype ", dtype_name(grad_weight.dtype()));
  }
}

}  // namespace sparrow::cuda
