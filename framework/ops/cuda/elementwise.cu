#include <array>

#include "framework/core/strided.h"
#include "framework/cuda/runtime.h"
#include "framework/ops/cuda/elementwise.h"
#include "framework/ops/cuda/strided.cuh"

namespace sparrow::cuda {

namespace {

template <class T> __device__ __forceinline__ T store(typename Acc<T>::type v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 store<__nv_bfloat16>(float v) { return __float2bfloat16(v); }

// K operands over one shape, coalesced on the host (size-1 dims dropped, neighbours that walk
// memory as one dim merged), so [B, N, D] + [D] costs one divmod per element, not three per
// operand.
template <int K>
struct Geometry {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t stride[K][kMaxDims] = {};
  int64_t offset[K] = {};

  __device__ void offsets(int64_t i, int64_t (&off)[K]) const {
    for (int k = 0; k < K; ++k) off[k] = offset[k];
    for (int d = ndim - 1; d > 0; --d) {
      const int64_t c = i % shape[d];
      i /= shape[d];
      for (int k = 0; k < K; ++k) off[k] += c * stride[k][d];
    }
    if (ndim > 0)
      for (int k = 0; k < K; ++k) off[k] += i * stride[k][0];  // i < shape[0] by now
  }
};

template <int K>
Geometry<K> make_geometry(const Shape& shape, const std::array<Shape, K>& st, const std::array<int64_t, K>& base) {
  Shape s = shape;
  std::array<Shape, K> t = st;
  coalesce<K>(s, t);
  SPARROW_CHECK(s.size() <= static_cast<size_t>(kMaxDims), "CUDA elementwise: at most ", kMaxDims,
                " non-mergeable dims, got ", shape_str(shape));
  Geometry<K> g;
  g.ndim = static_cast<int>(s.size());
  for (int d = 0; d < g.ndim; ++d) {
    g.shape[d] = s[d];
    for (int k = 0; k < K; ++k) g.stride[k][d] = t[k][d];
  }
  for (int k = 0; k < K; ++k) g.offset[k] = base[k];
  return g;
}

Shape strides_for(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t.strides();
  Shape out(shape.size(), 0);
  const size_t lead = shape.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i) out[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  return out;
}

// --- the ops, as functors over the compute type C (f32, or f64 for f64 tensors) ---------------
__device__ __forceinline__ float dtanh(float x) { return tanhf(x); }
__device__ __forceinline__ double dtanh(double x) { return ::tanh(x); }
__device__ __forceinline__ float dexp(float x) { return expf(x); }
__device__ __forceinline__ double dexp(double x) { return ::exp(x); }

struct AddOp { template <class C> __device__ C operator()(C a, C b) const { return a + b; } };
struct SubOp { template <class C> __device__ C operator()(C a, C b) const { return a - b; } };
struct MulOp { template <class C> __device__ C operator()(C a, C b) const { return a * b; } };
struct DivOp { template <class C> __device__ C operator()(C a, C b) const { return a / b; } };
struct TanhGradOp {
  template <class C> __device__ C operator()(C g, C y) const { return g * (C(1) - y * y); }
};
// gelu'(x) = ½(1 + t) + ½x(1 − t²)·k(1 + 3c·x²), t = tanh(k(x + c·x³)), k = √(2/π), c = 0.044715
struct GeluGradOp {
  template <class C> __device__ C operator()(C g, C x) const {
    const C k = C(0.7978845608028654), c = C(0.044715), h = C(0.5), one = C(1);
    const C t = dtanh(k * (x + c * x * x * x));
    return g * (h * (one + t) + h * x * (one - t * t) * k * (one + C(3) * c * x * x));
  }
};
// silu'(x) = σ(x)(1 + x(1 − σ(x)))
struct SiluGradOp {
  template <class C> __device__ C operator()(C g, C x) const {
    const C s = C(1) / (C(1) + dexp(-x));
    return g * s * (C(1) + x * (C(1) - s));
  }
};

// No __restrict__ on either kernel: add_ writes out == a.
template <class T, class F>
__global__ void binary_flat(T* o, const T* a, const T* b, int64_t n, F f) {
  using C = typename Acc<T>::type;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    o[i] = store<T>(f(C(to_f(a[i])), C(to_f(b[i]))));
}

template <class T, class F>
__global__ void binary_strided(T* o, const T* a, const T* b, Geometry<3> geo, int64_t n, F f) {
  using C = typename Acc<T>::type;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[3];
    geo.offsets(i, off);
    o[off[0]] = store<T>(f(C(to_f(a[off[1]])), C(to_f(b[off[2]]))));
  }
}

template <class F>
void run_binary(const char* op, const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const int64_t n = out.numel();
  if (n == 0) return;
  SPARROW_CUDA_FLOAT_DISPATCH(out.dtype(), op, [&] {
    auto* po = static_cast<T*>(out.impl().storage->data);
    const auto* pa = static_cast<const T*>(a.impl().storage->data);
    const auto* pb = static_cast<const T*>(b.impl().storage->data);
    if (a.shape() == out.shape() && b.shape() == out.shape() && a.is_contiguous() && b.is_contiguous() &&
        out.is_contiguous()) {
      binary_flat<<<grid_for(n), 256, 0, stream()>>>(po + out.offset(), pa + a.offset(), pb + b.offset(), n, f);
    } else {
      Geometry<3> geo = make_geometry<3>(out.shape(), {out.strides(), strides_for(a, out.shape()), strides_for(b, out.shape())},
                                         {out.offset(), a.offset(), b.offset()});
      binary_strided<<<grid_for(n), 256, 0, stream()>>>(po, pa, pb, geo, n, f);
    }
    SPARROW_CUDA_LAUNCH_CHECK();
  });
}

template <class T>
__global__ void fill_kernel(T* p, Geometry<1> geo, int64_t n, T v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[1];
    geo.offsets(i, off);
    p[off[0]] = v;
  }
}

template <class T>
void launch_fill(Tensor& a, T v) {
  const int64_t n = a.numel();
  Geometry<1> geo = make_geometry<1>(a.shape(), {a.strides()}, {a.offset()});
  fill_kernel<<<grid_for(n), 256, 0, stream()>>>(static_cast<T*>(a.impl().storage->data), geo, n, v);
  SPARROW_CUDA_LAUNCH_CHECK();
}

}  // namespace

void add(const Tensor& a, const Tensor& b, Tensor& out) { run_binary("add", a, b, out, AddOp{}); }
void sub(const Tensor& a, const Tensor& b, Tensor& out) { run_binary("sub", a, b, out, SubOp{}); }
void mul(const Tensor& a, const Tensor& b, Tensor& out) { run_binary("mul", a, b, out, MulOp{}); }
void div(const Tensor& a, const Tensor& b, Tensor& out) { run_binary("div", a, b, out, DivOp{}); }
void tanh_backward(const Tensor& g, const Tensor& y, Tensor& out) { run_binary("tanh backward", g, y, out, TanhGradOp{}); }
void gelu_backward(const Tensor& g, const Tensor& x, Tensor& out) { run_binary("gelu backward", g, x, out, GeluGradOp{}); }
void silu_backward(const Tensor& g, const Tensor& x, Tensor& out) { run_binary("silu backward", g, x, out, SiluGradOp{}); }

void fill(Tensor& a, double v) {
  if (a.numel() == 0) return;
  switch (a.dtype()) {
    case DType::F32: return launch_fill(a, static_cast<float>(v));
    case DType::F64: return launch_fill(a, v);
    case DType::BF16: return launch_fill(a, __float2bfloat16(static_cast<float>(v)));
    case DType::I32: return launch_fill(a, static_cast<int32_t>(v));
  }
}

}  // namespace sparrow::cuda
