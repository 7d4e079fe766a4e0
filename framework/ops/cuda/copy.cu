#include <type_traits>

#include "framework/cuda/runtime.h"
#include "framework/ops/cuda/copy.h"
#include "framework/ops/cuda/map.cuh"
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

template <class D>
void launch_from(const Tensor& src, Tensor& dst) {
  auto go = [&](auto* s) {
    using S = std::remove_const_t<std::remove_pointer_t<decltype(s)>>;
    const MapPlan<2> p = plan_map<2>(dst.shape(), {&dst, &src});
    auto* d = static_cast<D*>(dst.impl().storage->data);
    SPARROW_MAP_LAUNCH(p, (map1_kernel<V><<<grid_for(p.n), 256, 0, stream()>>>(d, s, p.geo, p.n, Convert<D, S>{})));
  };
  const void* s = src.impl().storage->data;
  switch (src.dtype()) {
    case DType::F32: return go(static_cast<const float*>(s));
    case DType::F64: return go(static_cast<const double*>(s));
    case DType::BF16: return go(static_cast<const __nv_bfloat16*>(s));
    case DType::I32: return go(static_cast<const int32_t*>(s));
  }
}

}  // namespace

void copy_strided(Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  if (dst.is_contiguous() && src.is_contiguous() && dst.dtype() == src.dtype()) {
    SPARROW_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), dst.nbytes(), cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  switch (dst.dtype()) {
    case DType::F32: return launch_from<float>(src, dst);
    case DType::F64: return launch_from<double>(src, dst);
    case DType::BF16: return launch_from<__nv_bfloat16>(src, dst);
    case DType::I32: return launch_from<int32_t>(src, dst);
  }
}

}  // namespace sparrow::cuda
