// RoPE: with c = cos θ, s = sin θ (θ = pos · base^(−2i/D)),
//   y₀ = c·x₀ − s·x₁,  y₁ = s·x₀ + c·x₁
// a rotation, so its Jacobian's transpose is the rotation by −θ: the backward is rope_apply
// with inverse = true (s → −s). The angle is formed and reduced in f64 (θ reaches 10⁶ rad at
// 1M tokens, where f32 would lose the phase); one cos/sin table per call, shared by all B·H.
#include "framework/ops/cpu/rope.h"

#include <cmath>
#include <vector>

#include "framework/ops/cpu/fused_util.h"

namespace sparrow::cpu {

namespace {
template <class T>
void apply_impl(const Tensor& in, Tensor& out, int64_t position_offset, double base, bool inverse) {
  using A = acc_t<T>;
  const int64_t BH = in.size(0) * in.size(1), N = in.size(2), D = in.size(3), P = D / 2;
  std::vector<A> cos_t(static_cast<size_t>(N * P)), sin_t(static_cast<size_t>(N * P));
#pragma omp parallel for schedule(static) if (N * P >= kParallelMin / 8)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < P; ++i) {
      const double theta = static_cast<double>(position_offset + n) * std::pow(base, -2.0 * double(i) / double(D));
      cos_t[n * P + i] = static_cast<A>(std::cos(theta));
      sin_t[n * P + i] = static_cast<A>(inverse ? -std::sin(theta) : std::sin(theta));
    }
  const T* ip = in.data<T>();
  T* op = out.data<T>();
#pragma omp parallel for schedule(static) if (BH * N * D >= kParallelMin)
  for (int64_t row = 0; row < BH * N; ++row) {
    const int64_t n = row % N;
    const T* xr = ip + row * D;
    T* yr = op + row * D;
    const A* c = cos_t.data() + n * P;
    const A* s = sin_t.data() + n * P;
    for (int64_t i = 0; i < P; ++i) {
      const A x0 = load_acc(xr[2 * i]), x1 = load_acc(xr[2 * i + 1]);
      yr[2 * i] = store_as<T>(c[i] * x0 - s[i] * x1);
      yr[2 * i + 1] = store_as<T>(s[i] * x0 + c[i] * x1);
    }
  }
}
}  // namespace

void rope_apply(const Tensor& in, Tensor& out, int64_t position_offset, double base, bool inverse) {
  if (in.numel() == 0) return;
  SPARROW_CPU_FLOAT_DISPATCH(in.dtype(), "rope", [&] { apply_impl<T>(in, out, position_offset, base, inverse); });
}

}  // namespace sparrow::cpu
