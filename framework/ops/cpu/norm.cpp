// Row-parallel layer/RMS normalisation. Forward per row (D elements), in the compute type A:
//   layer_norm: μ = Σx/D, σ² = Σ(x−μ)²/D (two passes, no cancellation), r = 1/√(σ²+ε)
//   rms_norm:   μ = 0,    σ² = Σx²/D,                                    r = 1/√(σ²+ε)
//   x̂ = (x−μ)·r,  y = x̂·w (+ b)
// Backward, with g = dy·w (the gradient reaching x̂):
//   dx = r·(g − mean(g) − x̂·mean(g·x̂))   (layer_norm: both terms, from ∂μ and ∂r)
//   dx = r·(g − x̂·mean(g·x̂))             (rms_norm: only the ∂r term)
//   (+ dx_add, x's gradient from its other consumers, when given)
//   dw = Σ_rows dy·x̂,  db = Σ_rows dy     (per-thread partial sums, then one fold)
#include "framework/ops/cpu/norm.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "framework/ops/cpu/fused_util.h"

namespace sparrow::cpu {

namespace {

template <class T>
void forward_impl(bool centered, const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& y,
                  Tensor& mean, Tensor& rstd) {
  using A = acc_t<T>;
  const int64_t D = x.size(-1), rows = x.numel() / D;
  const T* xp = x.data<T>();
  const T* wp = weight.data<T>();
  const T* bp = bias.defined() ? bias.data<T>() : nullptr;
  T* yp = y.data<T>();
  A* mp = centered ? mean.data<A>() : nullptr;
  A* rp = rstd.data<A>();
#pragma omp parallel for schedule(static) if (rows * D >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = xp + r * D;
    T* yr = yp + r * D;
    A mu = 0;
    if (centered) {
      for (int64_t j = 0; j < D; ++j) mu += load_acc(xr[j]);
      mu /= static_cast<A>(D);
    }
    A var = 0;
    for (int64_t j = 0; j < D; ++j) {
      A d = load_acc(xr[j]) - mu;
      var += d * d;
    }
    var /= static_cast<A>(D);
    const A rs = static_cast<A>(1) / std::sqrt(var + static_cast<A>(eps));
    for (int64_t j = 0; j < D; ++j) {
      A v = (load_acc(xr[j]) - mu) * rs * load_acc(wp[j]);
      if (bp) v += load_acc(bp[j]);
      yr[j] = store_as<T>(v);
    }
    if (mp) mp[r] = mu;
    rp[r] = rs;
  }
}

template <class T>
void backward_impl(bool centered, const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& mean,
                   const Tensor& rstd, const Tensor& dx_add, Tensor& dx, Tensor& dweight, Tensor& dbias) {
  using A = acc_t<T>;
  const int64_t D = x.size(-1), rows = x.numel() / D;
  const T* gp = dy.data<T>();
  const T* xp = x.data<T>();
  const T* wp = weight.data<T>();
  const A* mp = centered ? mean.data<A>() : nullptr;
  const A* rp = rstd.data<A>();
  T* dxp = dx.defined() ? dx.data<T>() : nullptr;
  const T* ap = dx_add.defined() ? dx_add.data<T>() : nullptr;  // added into dx
  const bool want_w = dweight.defined(), want_b = dbias.defined();
  const int nt = omp_get_max_threads();
  // Per-thread partial sums of dw and db: deterministic for a fixed thread count.
  std::vector<A> part_w(want_w ? static_cast<size_t>(nt * D) : 0, A(0));
  std::vector<A> part_b(want_b ? static_cast<size_t>(nt * D) : 0, A(0));
#pragma omp parallel num_threads(nt) if (rows * D >= kParallelMin)
  {
    const int t = omp_get_thread_num();
    A* pw = want_w ? part_w.data() + t * D : nullptr;
    A* pb = want_b ? part_b.data() + t * D : nullptr;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = xp + r * D;
      const T* gr = gp + r * D;
      const A mu = mp ? mp[r] : A(0), rs = rp[r];
      if (dxp) {
        A sum_g = 0, sum_gx = 0;
        for (int64_t j = 0; j < D; ++j) {
          const A g = load_acc(gr[j]) * load_acc(wp[j]);
          sum_g += g;
          sum_gx += g * (load_acc(xr[j]) - mu) * rs;
        }
        const A mean_g = centered ? sum_g / static_cast<A>(D) : A(0);
        const A mean_gx = sum_gx / static_cast<A>(D);
        T* dr = dxp + r * D;
        for (int64_t j = 0; j < D; ++j) {
          const A g = load_acc(gr[j]) * load_acc(wp[j]);
          const A xh = (load_acc(xr[j]) - mu) * rs;
          dr[j] = store_as<T>(rs * (g - mean_g - xh * mean_gx));
        }
        // The addend over the row just written (in L1), not inside the expression above: there the
        // compiler would fuse it into an FMA, and the sum would differ in its last bit from the
        // separate add it replaces (which a recomputed segment's input still gets).
        if (ap)
          for (int64_t j = 0; j < D; ++j) dr[j] = store_as<T>(load_acc(dr[j]) + load_acc(ap[r * D + j]));
      }
      if (pw)
        for (int64_t j = 0; j < D; ++j) pw[j] += load_acc(gr[j]) * (load_acc(xr[j]) - mu) * rs;
      if (pb)
        for (int64_t j = 0; j < D; ++j) pb[j] += load_acc(gr[j]);
    }
  }
  auto fold = [&](const std::vector<A>& part, Tensor& out) {
    T* o = out.data<T>();
    for (int64_t j = 0; j < D; ++j) {
      A s = 0;
      for (int t = 0; t < nt; ++t) s += part[t * D + j];
      o[j] = store_as<T>(s);
    }
  };
  if (want_w) fold(part_w, dweight);
  if (want_b) fold(part_b, dbias);
}

}  // namespace

void norm_forward(bool centered, const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& y,
                  Tensor& mean, Tensor& rstd) {
  SPARROW_CPU_FLOAT_DISPATCH(x.dtype(), centered ? "layer_norm" : "rms_norm",
                             [&] { forward_impl<T>(centered, x, weight, bias, eps, y, mean, rstd); });
}

void norm_backward(bool centered, const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& mean,
                   const Tensor& rstd, const Tensor& dx_add, Tensor& dx, Tensor& dweight, Tensor& dbias) {
  SPARROW_CPU_FLOAT_DISPATCH(x.dtype(), centered ? "layer_norm backward" : "rms_norm backward", [&] {
    backward_impl<T>(centered, dy, x, weight, mean, rstd, dx_add, dx, dweight, dbias);
  });
}

}  // namespace sparrow::cpu
