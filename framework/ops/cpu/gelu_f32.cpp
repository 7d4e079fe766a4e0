#include "framework/ops/cpu/gelu_f32.h"

#include <Eigen/Core>
#include <algorithm>

#include "framework/ops/cpu/elementwise.h"

namespace sparrow::cpu {

namespace {

constexpr float kK = 0.7978845608028654f, kC = 0.044715f;
// e^(−2u) stays finite: |2u| ≤ 80 (σ is then within f32's range of its limit 0 or 1).
constexpr float kMaxZ = 80.0f;
// Elements per piece: each operand's piece (16 KiB) stays in L1 between the passes.
constexpr int64_t kPiece = 4096;

template <class F>
void over_pieces(int64_t n, F f) {
  const int64_t pieces = (n + kPiece - 1) / kPiece;
#pragma omp parallel for schedule(static) if (n >= loop::kParallelMin)
  for (int64_t p = 0; p < pieces; ++p) {
    const int64_t i = p * kPiece;
    f(i, std::min(kPiece, n - i));
  }
}

// e = e^(−2u) for u = k(x + c·x³), 2u clamped to ±kMaxZ.
template <class X>
auto exp_minus_2u(const X& x) {
  return (-(2.0f * kK * (x + kC * x * x * x)).max(-kMaxZ).min(kMaxZ)).exp();
}

}  // namespace

void gelu_f32(const float* x, float* y, int64_t n) {
  over_pieces(n, [&](int64_t i, int64_t m) {
    Eigen::Map<const Eigen::ArrayXf> X(x + i, m);
    Eigen::Map<Eigen::ArrayXf> Y(y + i, m);
    Y = exp_minus_2u(X);  // e
    Y = X / (1.0f + Y);   // x·s
  });
}

void gelu_backward_f32(const float* g, const float* x, float* dx, int64_t n) {
  over_pieces(n, [&](int64_t i, int64_t m) {
    Eigen::Map<const Eigen::ArrayXf> G(g + i, m), X(x + i, m);
    alignas(64) float e[kPiece];
    Eigen::Map<Eigen::ArrayXf> E(e, m);
    E = exp_minus_2u(X);
    Eigen::Map<Eigen::ArrayXf> D(dx + i, m);
    // s = 1/(1 + e), 1 − s = e·s.
    D = G * ((1.0f / (1.0f + E)) * (1.0f + 2.0f * X * (E / (1.0f + E)) * kK * (1.0f + 3.0f * kC * X * X)));
  });
}

}  // namespace sparrow::cpu
