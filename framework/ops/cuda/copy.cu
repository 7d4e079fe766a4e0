#include <type_traits>

#include "framework/cuda/runtime.h"
#include "framework/ops/cuda/copy.h"
#include "framework/ops/cuda/map.cuh"
#include "framework/ops/cuda/strided.cuh"

namespace sparrow::cuda {

StridedDesc make_desc(const Tensor& t, const Shape& shape) {
  SPARROW_CHECK(static_cast<int>(shape.size()) <= kMaxDims, "CUDA kernels take at most ", kMaxDims, " dims, got ",
                shape_str(shape));
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
    case DType::F32:
      return go(static_cast<const float*>(s));
    case DType::F64:
      return go(static_cast<const double*>(s));
    case DType::BF16:
      return go(static_cast<const __nv_bfloat16*>(s));
    case DType::I32:
      return go(static_cast<const int32_t*>(s));
  }
}

// dst += convert(src), V lanes a thread.
template <int V, class D, class S>
__global__ void accumulate_kernel(D* d, const S* s, MapGeometry<2> g, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    g.offsets(i, off);
    Lanes<D, V> acc = load_lanes<D, V>(d + off[0], false);
    const Lanes<S, V> x = load_lanes<S, V>(s + off[1], g.splat[1]);
#pragma unroll
    for (int j = 0; j < V; ++j) acc.v[j] = store<D>(to_f(acc.v[j]) + to_f(x.v[j]));
    store_lanes<D, V>(d + off[0], acc);
  }
}

template <class D, class S>
void launch_accumulate(Tensor& dst, const Tensor& src) {
  const MapPlan<2> p = plan_map<2>(dst.shape(), {&dst, &src});
  auto* d = static_cast<D*>(dst.impl().storage->data);
  const auto* s = static_cast<const S*>(src.impl().storage->data);
  SPARROW_MAP_LAUNCH(p, (accumulate_kernel<V><<<grid_for(p.n), 256, 0, stream()>>>(d, s, p.geo, p.n)));
}

}  // namespace

void accumulate_strided(Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  SPARROW_CUDA_FLOAT_DISPATCH(dst.dtype(), "accumulate", [&] {
    using D = T;
    SPARROW_CUDA_FLOAT_DISPATCH(src.dtype(), "accumulate", [&] { launch_accumulate<D, T>(dst, src); });
  });
}

void copy_strided(Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  if (dst.is_contiguous() && src.is_contiguous() && dst.dtype() == src.dtype()) {
    SPARROW_CUDA_CHECK(
        cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), dst.nbytes(), cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  switch (dst.dtype()) {
    case DType::F32:
      return launch_from<float>(src, dst);
    case DType::F64:
      return launch_from<double>(src, dst);
    case DType::BF16:
      return launch_from<__nv_bfloat16>(src, dst);
    case DType::I32:
      return launch_from<int32_t>(src, dst);
  }
}

}  // namespace sparrow::cuda
