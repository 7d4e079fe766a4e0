#include <climits>

#include "framework/cuda/graph.h"
#include "framework/cuda/runtime.h"
#include "framework/ops/cuda/embedding.h"
#include "framework/ops/cuda/strided.cuh"

namespace sparrow::cuda {

namespace {

__global__ void first_bad_kernel(const int32_t* ids, int64_t n, int64_t v, int* first) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    if (ids[i] < 0 || ids[i] >= v) atomicMin(first, static_cast<int>(i));
}

// {1, position, id} for the first bad id, or {0, 0, 0}.
__global__ void first_bad_report_kernel(const int* first, const int32_t* ids, int64_t n, int32_t* report) {
  const int f = *first;
  const bool bad = f < n;
  report[0] = bad;
  report[1] = bad ? f : 0;
  report[2] = bad ? ids[f] : 0;
}

template <class T>
__global__ void gather_kernel(const T* w, const int32_t* ids, T* out, int64_t n, int64_t d, int64_t v) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n * d; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / d, c = e - i * d;
    const int64_t id = ids[i];
    out[e] = id >= 0 && id < v ? w[id * d + c] : from_f<T>(0.0);
  }
}

// acc is float for f32/bf16 gradients and double for f64 (native atomicAdd for both).
template <class T, class A>
__global__ void scatter_add_kernel(const T* g, const int32_t* ids, A* acc, int64_t n, int64_t d, int64_t v) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n * d; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / d, c = e - i * d;
    const int64_t id = ids[i];
    if (id >= 0 && id < v) atomicAdd(acc + id * d + c, static_cast<A>(to_f(g[e])));
  }
}

}  // namespace

void embedding_check_ids(const Tensor& ids, int64_t v, std::function<std::string(int64_t, int64_t)> message) {
  const int64_t n = ids.numel();
  SPARROW_CHECK(n < INT_MAX, "embedding: ", n, " ids exceed the range check's 2^31 limit");
  Tensor scratch = empty({4}, DType::I32, ids.device());  // [0]: first bad position, [1..3]: the report
  int* first = scratch.data<int32_t>();
  // 0x7f bytes make INT_MAX-ish: larger than any valid position.
  SPARROW_CUDA_CHECK(cudaMemsetAsync(first, 0x7f, sizeof(int), stream()));
  first_bad_kernel<<<grid_for(n), 256, 0, stream()>>>(ids.data<int32_t>(), n, v, first);
  SPARROW_CUDA_LAUNCH_CHECK();
  first_bad_report_kernel<<<1, 1, 0, stream()>>>(first, ids.data<int32_t>(), n, first + 1);
  SPARROW_CUDA_LAUNCH_CHECK();
  check_on_host(first + 1, 3, [message = std::move(message)](const int32_t* r) {
    return r[0] ? message(r[1], r[2]) : std::string();
  });
}

void embedding_forward(const Tensor& weight, const Tensor& ids, Tensor& out) {
  const int64_t n = ids.numel(), d = weight.size(1);
  if (n * d == 0) return;
  SPARROW_CUDA_FLOAT_DISPATCH(weight.dtype(), "embedding", [&] {
    gather_kernel<<<grid_for(n * d), 256, 0, stream()>>>(static_cast<const T*>(weight.data_ptr()), ids.data<int32_t>(),
                                                         static_cast<T*>(out.data_ptr()), n, d, weight.size(0));
    SPARROW_CUDA_LAUNCH_CHECK();
  });
}

void embedding_backward(const Tensor& grad_out, const Tensor& ids, Tensor& grad_weight) {
  const int64_t n = ids.numel(), d = grad_weight.size(1);
  if (n * d == 0) return;
  const int32_t* id = ids.data<int32_t>();
  switch (grad_weight.dtype()) {
    case DType::F32:
      scatter_add_kernel<<<grid_for(n * d), 256, 0, stream()>>>(grad_out.data<float>(), id, grad_weight.data<float>(),
                                                                n, d, grad_weight.size(0));
      SPARROW_CUDA_LAUNCH_CHECK();
      return;
    case DType::F64:
      scatter_add_kernel<<<grid_for(n * d), 256, 0, stream()>>>(grad_out.data<double>(), id, grad_weight.data<double>(),
                                                                n, d, grad_weight.size(0));
      SPARROW_CUDA_LAUNCH_CHECK();
      return;
    case DType::BF16: {
      Tensor acc = zeros(grad_weight.shape(), DType::F32, grad_weight.device());
      scatter_add_kernel<<<grid_for(n * d), 256, 0, stream()>>>(static_cast<const __nv_bfloat16*>(grad_out.data_ptr()),
                                                                id, acc.data<float>(), n, d, grad_weight.size(0));
      SPARROW_CUDA_LAUNCH_CHECK();
      copy_(grad_weight, acc);
      return;
    }
    default:
      fail("embedding backward (cuda): unsupported dtype ", dtype_name(grad_weight.dtype()));
  }
}

}  // namespace sparrow::cuda
