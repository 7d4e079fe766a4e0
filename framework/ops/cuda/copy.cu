#include "framework/cuda/runtime.h"
#include "framework/ops/cuda/copy.h"
#include "framework/ops/cuda/strided.cuh"

namespace sparrow::cuda {

StridedDesc make_desc(const Tensor& t, const Shape& shape) {
  SPARROW_CHECK(static_cast<int>(shape.size()) <= kMaxDims, "CUDA kernels take at most ", kMaxDims,
                " dims, got ", shape_str(shape));
  StridedDesc d;
  d.ndim = static_cast<int>(shape.size());
  Shape st = t.shape() == shape ? t.strides() : Shape(shape.size(), 0);
  if (t.shape() != shape) {
    size_t lead = shape.size() - t.shape().size();
    for (size_t i = 0; i < t.shape().size(); ++i) st[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  }
  for (int i = 0; i < d.ndim; ++i) {
    d.shape[i] = shape[i];
    d.stride[i] = st[i];
  }
  d.offset = t.offset();
  return d;
}

namespace {
template <class D, class S>
__global__ void copy_kernel(D* dst, StridedDesc dd, const S* src, StridedDesc sd, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[dd.at(i)] = from_f<D>(to_f(src[sd.at(i)]));
}

template <class D>
void launch_from(DType st, D* dst, const StridedDesc& dd, const void* src, const StridedDesc& sd, int64_t n) {
  auto go = [&](auto* s) {
    copy_kernel<<<grid_for(n), 256, 0, stream()>>>(dst, dd, s, sd, n);
    SPARROW_CUDA_LAUNCH_CHECK();
  };
  switch (st) {
    case DType::F32: return go(static_cast<const float*>(src));
    case DType::F64: return go(static_cast<const double*>(src));
    case DType::BF16: return go(static_cast<const __nv_bfloat16*>(src));
    case DType::I32: return go(static_cast<const int32_t*>(src));
  }
}
}  // namespace

void copy_strided(Tensor& dst, const Tensor& src) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (dst.is_contiguous() && src.is_contiguous() && dst.dtype() == src.dtype()) {
    SPARROW_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), dst.nbytes(), cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  // Base pointers: descriptors carry the element offsets.
  void* d = dst.impl().storage->data;
  const void* s = src.impl().storage->data;
  StridedDesc dd = make_desc(dst), sd = make_desc(src);
  switch (dst.dtype()) {
    case DType::F32: return launch_from(src.dtype(), static_cast<float*>(d), dd, s, sd, n);
    case DType::F64: return launch_from(src.dtype(), static_cast<double*>(d), dd, s, sd, n);
    case DType::BF16: return launch_from(src.dtype(), static_cast<__nv_bfloat16*>(d), dd, s, sd, n);
    case DType::I32: return launch_from(src.dtype(), static_cast<int32_t*>(d), dd, s, sd, n);
  }
}

}  // namespace sparrow::cuda
