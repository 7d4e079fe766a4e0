#include "framework/ops/cpu/unary.h"

#include <cmath>

#include "framework/ops/cpu/elementwise.h"
#include "framework/ops/cpu/gelu_f32.h"

namespace sparrow::cpu {

namespace {
template <class F>
void run_unary(const char* op, const Tensor& a, Tensor& out, F f) {
  loop::dispatch_float(out.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    loop::unary<T>(a, out, f);
  });
}
}  // namespace

void add_scalar(const Tensor& a, double s, Tensor& out) {
  run_unary("add_scalar", a, out, [s](auto x) { return x + decltype(x)(s); });
}
void mul_scalar(const Tensor& a, double s, Tensor& out) {
  run_unary("mul_scalar", a, out, [s](auto x) { return x * decltype(x)(s); });
}
void pow_scalar(const Tensor& a, double p, Tensor& out) {
  // The common exponents get exact, fast forms; std::pow handles negative bases for integer p.
  if (p == 1.0) return run_unary("pow_scalar", a, out, [](auto x) { return x; });
  if (p == 2.0) return run_unary("pow_scalar", a, out, [](auto x) { return x * x; });
  if (p == 0.5) return run_unary("pow_scalar", a, out, [](auto x) { return std::sqrt(x); });
  if (p == -1.0) return run_unary("pow_scalar", a, out, [](auto x) { return decltype(x)(1) / x; });
  run_unary("pow_scalar", a, out, [p](auto x) { return std::pow(x, decltype(x)(p)); });
}
void neg(const Tensor& a, Tensor& out) {
  run_unary("neg", a, out, [](auto x) { return -x; });
}
void exp(const Tensor& a, Tensor& out) {
  run_unary("exp", a, out, [](auto x) { return std::exp(x); });
}
void log(const Tensor& a, Tensor& out) {
  run_unary("log", a, out, [](auto x) { return std::log(x); });
}
void tanh(const Tensor& a, Tensor& out) {
  run_unary("tanh", a, out, [](auto x) { return std::tanh(x); });
}
void sqrt(const Tensor& a, Tensor& out) {
  run_unary("sqrt", a, out, [](auto x) { return std::sqrt(x); });
}
// ½x(1 + tanh(√(2/π)(x + 0.044715x³)))  (GPT-2's approximation)
void gelu(const Tensor& a, Tensor& out) {
  if (a.dtype() == DType::F32 && out.dtype() == DType::F32 && a.is_contiguous() && out.is_contiguous())
    return gelu_f32(a.data<float>(), out.data<float>(), out.numel());
  run_unary("gelu", a, out, [](auto x) {
    using C = decltype(x);
    return C(0.5) * x * (C(1) + std::tanh(C(0.7978845608028654) * (x + C(0.044715) * x * x * x)));
  });
}
// x·σ(x) = x / (1 + e^−x)
void silu(const Tensor& a, Tensor& out) {
  run_unary("silu", a, out, [](auto x) { return x / (decltype(x)(1) + std::exp(-x)); });
}

}  // namespace sparrow::cpu
