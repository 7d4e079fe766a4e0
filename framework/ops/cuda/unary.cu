#include "framework/cuda/runtime.h"
#include "framework/ops/cuda/map.cuh"
#include "framework/ops/cuda/unary.h"

namespace sparrow::cuda {

namespace {

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
  template <class C>
  __device__ C operator()(C x) const {
    return x + C(s);
  }
};
struct MulScalarOp {
  double s;
  template <class C>
  __device__ C operator()(C x) const {
    return x * C(s);
  }
};
struct PowOp {
  double p;
  template <class C>
  __device__ C operator()(C x) const {
    return m_pow(x, C(p));
  }
};
struct SquareOp {
  template <class C>
  __device__ C operator()(C x) const {
    return x * x;
  }
};
struct RecipOp {
  template <class C>
  __device__ C operator()(C x) const {
    return C(1) / x;
  }
};
struct NegOp {
  template <class C>
  __device__ C operator()(C x) const {
    return -x;
  }
};
struct ExpOp {
  template <class C>
  __device__ C operator()(C x) const {
    return m_exp(x);
  }
};
struct LogOp {
  template <class C>
  __device__ C operator()(C x) const {
    return m_log(x);
  }
};
struct TanhOp {
  template <class C>
  __device__ C operator()(C x) const {
    return m_tanh(x);
  }
};
struct SqrtOp {
  template <class C>
  __device__ C operator()(C x) const {
    return m_sqrt(x);
  }
};
// ½x(1 + tanh(√(2/π)(x + 0.044715x³)))
struct GeluOp {
  template <class C>
  __device__ C operator()(C x) const {
    return C(0.5) * x * (C(1) + m_tanh(C(0.7978845608028654) * (x + C(0.044715) * x * x * x)));
  }
};
struct SiluOp {
  template <class C>
  __device__ C operator()(C x) const {
    return x / (C(1) + m_exp(-x));
  }
};

template <class F>
void run_unary(const char* op, const Tensor& a, Tensor& out, F f) {
  if (out.numel() == 0) return;
  SPARROW_CUDA_FLOAT_DISPATCH(out.dtype(), op, [&] {
    const MapPlan<2> p = plan_map<2>(out.shape(), {&out, &a});
    auto* o = static_cast<T*>(out.impl().storage->data);
    const auto* x = static_cast<const T*>(a.impl().storage->data);
    SPARROW_MAP_LAUNCH(p,
                       (map1_kernel<V><<<grid_for(p.n), 256, 0, stream()>>>(o, x, p.geo, p.n, InComputeType<T, F>{f})));
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
