#include "framework/cuda/runtime.h"
#include "framework/ops/cuda/elementwise.h"
#include "framework/ops/cuda/map.cuh"

namespace sparrow::cuda {

namespace {

// --- the ops, as functors over the compute type C (f32, or f64 for f64 tensors) ---------------
__device__ __forceinline__ float dtanh(float x) { return tanhf(x); }
__device__ __forceinline__ double dtanh(double x) { return ::tanh(x); }
__device__ __forceinline__ float dexp(float x) { return expf(x); }
__device__ __forceinline__ double dexp(double x) { return ::exp(x); }

struct AddOp {
  template <class C>
  __device__ C operator()(C a, C b) const {
    return a + b;
  }
};
struct SubOp {
  template <class C>
  __device__ C operator()(C a, C b) const {
    return a - b;
  }
};
struct MulOp {
  template <class C>
  __device__ C operator()(C a, C b) const {
    return a * b;
  }
};
struct DivOp {
  template <class C>
  __device__ C operator()(C a, C b) const {
    return a / b;
  }
};
struct TanhGradOp {
  template <class C>
  __device__ C operator()(C g, C y) const {
    return g * (C(1) - y * y);
  }
};
// gelu'(x) = ½(1 + t) + ½x(1 − t²)·k(1 + 3c·x²), t = tanh(k(x + c·x³)), k = √(2/π), c = 0.044715
struct GeluGradOp {
  template <class C>
  __device__ C operator()(C g, C x) const {
    const C k = C(0.7978845608028654), c = C(0.044715), h = C(0.5), one = C(1);
    const C t = dtanh(k * (x + c * x * x * x));
    return g * (h * (one + t) + h * x * (one - t * t) * k * (one + C(3) * c * x * x));
  }
};
// silu'(x) = σ(x)(1 + x(1 − σ(x)))
struct SiluGradOp {
  template <class C>
  __device__ C operator()(C g, C x) const {
    const C s = C(1) / (C(1) + dexp(-x));
    return g * s * (C(1) + x * (C(1) - s));
  }
};

// No __restrict__ in the kernel: add_ writes out == a.
template <class F>
void run_binary(const char* op, const Tensor& a, const Tensor& b, Tensor& out, F f) {
  if (out.numel() == 0) return;
  SPARROW_CUDA_FLOAT_DISPATCH(out.dtype(), op, [&] {
    const MapPlan<3> p = plan_map<3>(out.shape(), {&out, &a, &b});
    auto* po = static_cast<T*>(out.impl().storage->data);
    const auto* pa = static_cast<const T*>(a.impl().storage->data);
    const auto* pb = static_cast<const T*>(b.impl().storage->data);
    SPARROW_MAP_LAUNCH(p, (map2_kernel<V><<<grid_for(p.n), 256, 0, stream()>>>(po, pa, pb, p.geo, p.n, f)));
  });
}

// Writes v everywhere: a zero fill of contiguous memory is a memset; the rest a map of nothing.
template <class T>
struct Constant {
  T v;
  __device__ __forceinline__ T operator()(T) const { return v; }
};

template <class T>
void launch_fill(Tensor& a, T v) {
  if (a.is_contiguous() && v == T(0)) {
    SPARROW_CUDA_CHECK(cudaMemsetAsync(a.data_ptr(), 0, a.nbytes(), stream()));
    return;
  }
  const MapPlan<2> p = plan_map<2>(a.shape(), {&a, &a});
  T* d = static_cast<T*>(a.impl().storage->data);
  SPARROW_MAP_LAUNCH(p, (map1_kernel<V><<<grid_for(p.n), 256, 0, stream()>>>(d, d, p.geo, p.n, Constant<T>{v})));
}

}  // namespace

void add(const Tensor& a, const Tensor& b, Tensor& out) { run_binary("add", a, b, out, AddOp{}); }
void sub(const Tensor& a, const Tensor& b, Tensor& out) { run_binary("sub", a, b, out, SubOp{}); }
void mul(const Tensor& a, const Tensor& b, Tensor& out) { run_binary("mul", a, b, out, MulOp{}); }
void div(const Tensor& a, const Tensor& b, Tensor& out) { run_binary("div", a, b, out, DivOp{}); }
void tanh_backward(const Tensor& g, const Tensor& y, Tensor& out) {
  run_binary("tanh backward", g, y, out, TanhGradOp{});
}
void gelu_backward(const Tensor& g, const Tensor& x, Tensor& out) {
  run_binary("gelu backward", g, x, out, GeluGradOp{});
}
void silu_backward(const Tensor& g, const Tensor& x, Tensor& out) {
  run_binary("silu backward", g, x, out, SiluGradOp{});
}

void fill(Tensor& a, double v) {
  if (a.numel() == 0) return;
  switch (a.dtype()) {
    case DType::F32:
      return launch_fill(a, static_cast<float>(v));
    case DType::F64:
      return launch_fill(a, v);
    case DType::BF16:
      return launch_fill(a, __float2bfloat16(static_cast<float>(v)));
    case DType::I32:
      return launch_fill(a, static_cast<int32_t>(v));
  }
}

}  // namespace sparrow::cuda
