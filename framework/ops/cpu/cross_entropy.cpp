// Fused log-softmax + NLL. Per row i with target t_i (rows with t_i == ignore_index skipped):
//   lse_i = m + log Σ_j exp(x_ij − m),  loss_i = lse_i − x_{i,t_i}  (cross_entropy_rows)
//   L = Σ loss_i / count                                              (cross_entropy_reduce)
// Backward: ∂L/∂x_ij = (exp(x_ij − lse_i) − [j == t_i]) / count, scaled by the incoming dL.
#include "framework/ops/cpu/cross_entropy.h"

#include <cmath>
#include <vector>

#include "framework/ops/cpu/fused_util.h"

namespace sparrow::cpu {

namespace {

template <class T>
void rows_impl(const Tensor& logits, const Tensor& targets, int32_t ignore, Tensor& lse, Tensor& row_loss) {
  using A = acc_t<T>;
  const int64_t N = logits.size(0), V = logits.size(1);
  const T* xp = logits.data<T>();
  const int32_t* tp = targets.data<int32_t>();
  A* lp = lse.data<A>();
  A* rp = row_loss.data<A>();
#pragma omp parallel for schedule(static) if (N * V >= kParallelMin)
  for (int64_t i = 0; i < N; ++i) {
    const T* xr = xp + i * V;
    A m = -INFINITY;
    for (int64_t j = 0; j < V; ++j) m = std::max(m, load_acc(xr[j]));
    A s = 0;
    for (int64_t j = 0; j < V; ++j) s += std::exp(load_acc(xr[j]) - m);
    lp[i] = m + std::log(s);
    rp[i] = tp[i] != ignore ? lp[i] - load_acc(xr[tp[i]]) : A(0);
  }
}

template <class A>
void reduce_impl(const Tensor& row_loss, const Tensor& targets, int32_t ignore, Tensor& loss, Tensor& count) {
  const int64_t N = row_loss.size(0);
  const A* rp = row_loss.data<A>();
  const int32_t* tp = targets.data<int32_t>();
  // A fixed-order sum in f64: the same loss whatever the thread count.
  double total = 0;
  int64_t counted = 0;
  for (int64_t i = 0; i < N; ++i)
    if (tp[i] != ignore) {
      total += static_cast<double>(rp[i]);
      ++counted;
    }
  loss.data<A>()[0] = static_cast<A>(counted ? total / static_cast<double>(counted) : 0.0);
  count.data<int32_t>()[0] = static_cast<int32_t>(counted);
}

template <class T>
void backward_impl(const Tensor& logits, const Tensor& targets, int32_t ignore, const Tensor& lse, const Tensor& g,
                   const Tensor& count_t, Tensor& dlogits) {
  using A = acc_t<T>;
  const int64_t N = logits.size(0), V = logits.size(1);
  const T* xp = logits.data<T>();
  const int32_t* tp = targets.data<int32_t>();
  const A* lp = lse.data<A>();
  T* dp = dlogits.data<T>();
  const int64_t count = count_t.data<int32_t>()[0];
  const A scale = count ? g.data<A>()[0] / static_cast<A>(count) : A(0);
#pragma omp parallel for schedule(static) if (N * V >= kParallelMin)
  for (int64_t i = 0; i < N; ++i) {
    T* dr = dp + i * V;
    if (tp[i] == ignore) {
      for (int64_t j = 0; j < V; ++j) dr[j] = store_as<T>(A(0));
      continue;
    }
    const T* xr = xp + i * V;
    for (int64_t j = 0; j < V; ++j) dr[j] = store_as<T>(std::exp(load_acc(xr[j]) - lp[i]) * scale);
    dr[tp[i]] = store_as<T>((std::exp(load_acc(xr[tp[i]]) - lp[i]) - A(1)) * scale);
  }
}

}  // namespace

void cross_entropy_rows(const Tensor& logits, const Tensor& targets, int32_t ignore_index, Tensor& lse,
                        Tensor& row_loss) {
  const int64_t N = logits.size(0), V = logits.size(1);
  const int32_t* tp = targets.data<int32_t>();
  for (int64_t i = 0; i < N; ++i)
    SPARROW_CHECK(tp[i] == ignore_index || (tp[i] >= 0 && tp[i] < V), "cross_entropy: target ", tp[i], " at row ", i,
                  " is outside [0, ", V, ") and is not ignore_index (", ignore_index, ")");
  SPARROW_CPU_FLOAT_DISPATCH(logits.dtype(), "cross_entropy",
                             [&] { rows_impl<T>(logits, targets, ignore_index, lse, row_loss); });
}

// V is unused here: cross_entropy_rows has already thrown on any target outside [0, V).
void cross_entropy_reduce(const Tensor& row_loss, const Tensor& targets, int32_t ignore_index, int64_t, Tensor& loss,
                          Tensor& count) {
  if (row_loss.dtype() == DType::F64)
    reduce_impl<double>(row_loss, targets, ignore_index, loss, count);
  else
    reduce_impl<float>(row_loss, targets, ignore_index, loss, count);
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int32_t ignore_index, const Tensor& lse,
                            const Tensor& g, const Tensor& count, Tensor& dlogits) {
  SPARROW_CPU_FLOAT_DISPATCH(logits.dtype(), "cross_entropy backward",
                             [&] { backward_impl<T>(logits, targets, ignore_index, lse, g, count, dlogits); });
}

}  // namespace sparrow::cpu
