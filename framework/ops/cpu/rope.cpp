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
// cos/sin of θ(n, i) for n < N, i < P, in f64 then rounded to A (−sin when inverse).
template <class A>
void angle_table(int64_t N, int64_t D, int64_t position_offset, double base, bool inverse, std::vector<A>& c,
                 std::vector<A>& s) {
  const int64_t P = D / 2;
  c.resize(static_cast<size_t>(N * P));
  s.resize(static_cast<size_t>(N * P));
#pragma omp parallel for schedule(static) if (N * P >= kParallelMin / 8)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < P; ++i) {
      const double theta = static_cast<double>(position_offset + n) * std::pow(base, -2.0 * double(i) / double(D));
      c[n * P + i] = static_cast<A>(std::cos(theta));
      s[n * P + i] = static_cast<A>(inverse ? -std::sin(theta) : std::sin(theta));
    }
}

template <class T>
void apply_impl(const Tensor& in, Tensor& out, int64_t position_offset, double base, bool inverse) {
  using A = acc_t<T>;
  const int64_t BH = in.size(0) * in.size(1), N = in.size(2), D = in.size(3), P = D / 2;
  std::vector<A> cos_t, sin_t;
  angle_table(N, D, position_offset, base, inverse, cos_t, sin_t);
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
// One (b, t) row of qkv per iteration: 3·H segments of D elements, each moved between the
// [B, T, 3, H, D] and [3, B, H, T, D] layouts and, for q and k, rotated.
template <class T>
void heads_impl(const Tensor& in, Tensor& out, int64_t H, int64_t position_offset, double base, bool to_heads) {
  using A = acc_t<T>;
  const Shape& qs = to_heads ? in.shape() : out.shape();  // [B, T, 3·H·D]
  const int64_t B = qs[0], T_ = qs[1], D = qs[2] / (3 * H), P = D / 2;
  std::vector<A> cos_t, sin_t;
  angle_table(T_, D, position_offset, base, !to_heads, cos_t, sin_t);
  const T* ip = in.data<T>();
  T* op = out.data<T>();
#pragma omp parallel for schedule(static) if (B * T_ * 3 * H * D >= kParallelMin)
  for (int64_t row = 0; row < B * T_; ++row) {
    const int64_t b = row / T_, t = row % T_;
    const A* c = cos_t.data() + t * P;
    const A* s = sin_t.data() + t * P;
    for (int64_t part = 0; part < 3; ++part)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t packed = ((row * 3 + part) * H + h) * D;          // [B, T, 3, H, D]
        const int64_t split = (((part * B + b) * H + h) * T_ + t) * D;  // [3, B, H, T, D]
        const T* x = ip + (to_heads ? packed : split);
        T* y = op + (to_heads ? split : packed);
        if (part == 2) {
          for (int64_t j = 0; j < D; ++j) y[j] = x[j];
          continue;
        }
        for (int64_t i = 0; i < P; ++i) {
          const A x0 = load_acc(x[2 * i]), x1 = load_acc(x[2 * i + 1]);
          y[2 * i] = store_as<T>(c[i] * x0 - s[i] * x1);
          y[2 * i + 1] = store_as<T>(s[i] * x0 + c[i] * x1);
        }
      }
  }
}

}  // namespace

void rope_heads(const Tensor& in, Tensor& out, int64_t heads, int64_t position_offset, double base, bool to_heads) {
  if (in.numel() == 0) return;
  SPARROW_CPU_FLOAT_DISPATCH(in.dtype(), "rope_heads",
                             [&] { heads_impl<T>(in, out, heads, position_offset, base, to_heads); });
}

void rope_apply(const Tensor& in, Tensor& out, int64_t position_offset, double base, bool inverse) {
  if (in.numel() == 0) return;
  SPARROW_CPU_FLOAT_DISPATCH(in.dtype(), "rope", [&] { apply_impl<T>(in, out, position_offset, base, inverse); });
}

}  // namespace sparrow::cpu
