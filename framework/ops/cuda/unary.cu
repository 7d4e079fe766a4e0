#include "framework/cuda/runtime.h"
#include "framework/ops/cuda/strided.cuh"
#include "framework/ops/cuda/unary.h"

namespace sparrow::cuda {

namespace {

template <class T> __device__ __forceinline__ T store(typename Acc<T>::type v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 store<__nv_bfloat16>(float v) { return __float2bfloat16(v); }

// f32 and f64 overloads of the math functions (f32 uses the accurate, non-intrinsic forms).
__device__ __forceinline__ float m_exp(float x) { return expf(x); }
__device__ __forceinline__ double m_exp(double x) { return ::exp(x); }
__device__ __forceinline__ float m_log(float x) { return logf(x); }
__device__ __forceinline__ double m_log(double x) { return ::log(x); }
__device__ __forceinline__ float m_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double m_tanh(double x) { return ::tanh(x); }
__device__ __forceinline__ float m_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double m_sqrt(double x) { return ::sqrt(x); }
__device__ __forceinline__ float m_pow(float x, float p) { return powf(x, p); }
__device__ __forceinline__ double m_pow(double x, double p) { return ::pow(x, p); }

struct AddScalarOp {
  double s;
  template <class C> __device__ C operator()(C x) const { return x + C(s); }
};
struct MulScalarOp {
  double s;
  template <class C> __device__ C operator()(C x) const { return x * C(s); }
};
struct PowOp {
  double p;
  template <class C> __device__ C operator()(C x) const { return m_pow(x, C(p)); }
};
struct SquareOp { template <class C> __device__ C operator()(C x) const { return x * x; } };
struct RecipOp { template <class C> __device__ C operator()(C x) const { return C(1) / x; } };
struct NegOp { template <class C> __device__ C operator()(C x) const { return -x; } };
struct ExpOp { template <class C> __device__ C operator()(C x) const { return m_exp(x); } };
struct LogOp { template <class C> __device__ C operator()(C x) const { return m_log(x); } };
struct TanhOp { template <class C> __device__ C operator()(C x) const { return m_tanh(x); } };
struct SqrtOp { template <class C> __device__ C operator()(C x) const { return m_sqrt(x); } };
// ½x(1 + tanh(√(2/π)(x + 0.044715x³)))
struct GeluOp {
  template <class C> __device__ C operator()(C x) const {
    return C(0.5) * x * (C(1) + m_tanh(C(0.7978845608028654) * (x + C(0.044715) * x * x * x)));
  }
};
struct SiluOp { template <class C> __device__ C operator()(C x) const { return x / (C(1) + m_exp(-x)); } };

template <class T, class F>
__global__ void unary_flat(T* o, const T* a, int64_t n, F f) {
  using C = typename Acc<T>::type;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    o[i] = store<T>(f(C(to_f(a[i]))));
}

template <class T, class F>
__global__ void unary_strided(T* o, StridedDesc od, const T* a, StridedDesc ad, int64_t n, F f) {
  using C = typename Acc<T>::type;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    o[od.at(i)] = store<T>(f(C(to_f(a[ad.at(i)]))));
}

template <class F>
void run_unary(const char* op, const Tensor& a, Tensor& out, F f) {
  const int64_t n = out.numel();
  if (n == 0) return;
  SPARROW_CUDA_FLOAT_DISPATCH(out.dtype(), op, [&] {
    if (a.is_contiguous() && out.is_contiguous()) {
      unary_flat<<<grid_for(n), 256, 0, stream()>>>(static_cast<T*>(out.data_ptr()),
                                                    static_cast<const T*>(a.data_ptr()), n, f);
    } else {
      unary_strided<<<grid_for(n), 256, 0, stream()>>>(static_cast<T*>(out.impl().storage->data), make_desc(out),
                                                       static_cast<const T*>(a.impl().storage->data), make_desc(a),
                                                       n, f);
    }
    SPARROW_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace

void add_scalar(const Tensor& a, double s, Tensor& out) { run_unary("add_scalar", a, out, AddScalarOp{s}); }
void mul_scalar(const Tensor& a, double s, Tensor& out) { run_unary("mul_scalar", a, out, MulScalarOp{s}); }
void pow_scalar(const Tensor& a, double p, Tensor& out) {
  if (p == 2.0) return run_unary("pow_scalar", a, out, SquareOp{});
  if (p == 0.5) return run_unary("pow_scalar", a, out, SqrtOp{});
  if (p == -1.0) return run_unary("pow_scalar", a, out, RecipOp{});
  run_unary("pow_scalar", a, out, PowOp{p});
}
void neg(const Tensor& a, Tensor& out) { run_unary("neg", a, out, NegOp{}); }
void exp(const Tensor& a, Tensor& out) { run_unary("exp", a, out, ExpOp{}); }
void log(const Tensor& a, Tensor& out) { run_unary("log", a, out, LogOp{}); }
void tanh(const Tensor& a, Tensor& out) { run_unary("tanh", a, out, TanhOp{}); }
void sqrt(const Tensor& a, Tensor& out) { run_unary("sqrt", a, out, SqrtOp{}); }
void gelu(const Tensor& a, Tensor& out) { run_unary("gelu", a, out, GeluOp{}); }
void silu(const Tensor& a, Tensor& out) { run_unary("silu", a, out, SiluOp{}); }

}  // namespace sparrow::cuda
