#include "framework/ops/cpu/elementwise.h"

#include <cmath>

#include "framework/ops/cpu/gelu_f32.h"

namespace sparrow::cpu {

namespace {
template <class F>
void run_binary(const char* op, const Tensor& a, const Tensor& b, Tensor& out, F f) {
  loop::dispatch_float(out.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    loop::binary<T>(a, b, out, f);
  });
}
}  // namespace

void add(const Tensor& a, const Tensor& b, Tensor& out) {
  run_binary("add", a, b, out, [](auto x, auto y) { return x + y; });
}
void sub(const Tensor& a, const Tensor& b, Tensor& out) {
  run_binary("sub", a, b, out, [](auto x, auto y) { return x - y; });
}
void mul(const Tensor& a, const Tensor& b, Tensor& out) {
  run_binary("mul", a, b, out, [](auto x, auto y) { return x * y; });
}
void div(const Tensor& a, const Tensor& b, Tensor& out) {
  run_binary("div", a, b, out, [](auto x, auto y) { return x / y; });
}

void tanh_backward(const Tensor& g, const Tensor& y, Tensor& out) {
  run_binary("tanh backward", g, y, out, [](auto gv, auto yv) { return gv * (decltype(yv)(1) - yv * yv); });
}

// gelu(x) = ½x(1 + t), t = tanh(u), u = k(x + c·x³), k = √(2/π), c = 0.044715, so
// gelu'(x) = ½(1 + t) + ½x(1 − t²)·k(1 + 3c·x²).
void gelu_backward(const Tensor& g, const Tensor& x, Tensor& out) {
  if (g.dtype() == DType::F32 && x.dtype() == DType::F32 && out.dtype() == DType::F32 && g.shape() == out.shape() &&
      x.shape() == out.shape() && g.is_contiguous() && x.is_contiguous() && out.is_contiguous())
    return gelu_backward_f32(g.data<float>(), x.data<float>(), out.data<float>(), out.numel());
  run_binary("gelu backward", g, x, out, [](auto gv, auto xv) {
    using C = decltype(xv);
    const C k = C(0.7978845608028654), c = C(0.044715), half = C(0.5), one = C(1);
    const C t = std::tanh(k * (xv + c * xv * xv * xv));
    return gv * (half * (one + t) + half * xv * (one - t * t) * k * (one + C(3) * c * xv * xv));
  });
}

// silu(x) = x·σ(x), silu'(x) = σ(x) + x·σ(x)(1 − σ(x)).
void silu_backward(const Tensor& g, const Tensor& x, Tensor& out) {
  run_binary("silu backward", g, x, out, [](auto gv, auto xv) {
    using C = decltype(xv);
    const C s = C(1) / (C(1) + std::exp(-xv));
    return gv * s * (C(1) + xv * (C(1) - s));
  });
}

void fill(Tensor& a, double v) {
  auto go = [&](auto value) {
    using T = decltype(value);
    T* p = loop::base_ptr<T>(a);
    loop::for_each_run<1>(a.shape(), {a.strides()}, {a.offset()},
                          [&](int64_t n, const std::array<int64_t, 1>& off, const std::array<int64_t, 1>& s) {
                            T* y = p + off[0];
                            if (s[0] == 1)
                              std::fill(y, y + n, value);
                            else
                              for (int64_t i = 0; i < n; ++i) y[i * s[0]] = value;
                          });
  };
  switch (a.dtype()) {
    case DType::F32:
      return go(static_cast<float>(v));
    case DType::F64:
      return go(v);
    case DType::BF16:
      return go(bf16(static_cast<float>(v)));
    case DType::I32:
      return go(static_cast<int32_t>(v));
  }
}

}  // namespace sparrow::cpu
