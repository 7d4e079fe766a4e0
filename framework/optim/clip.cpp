#include "framework/optim/clip.h"

#include <cmath>

#include "framework/autograd/node.h"
#include "framework/ops/ops.h"

namespace sparrow::optim {

namespace {
template <class T>
double sum_squares_host(const T* p, int64_t n) {
  double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(p[i]);
    s += x * x;
  }
  return s;
}

double sum_squares(const Tensor& g) {
  NoGradGuard ng;
  if (g.device().is_cpu() && g.is_contiguous()) {
    if (g.dtype() == DType::F32) return sum_squares_host(g.data<float>(), g.numel());
    if (g.dtype() == DType::F64) return sum_squares_host(g.data<double>(), g.numel());
  }
  // GPU (or strided/bf16) gradients: one reduction with the ops, in f32 at least.
  Tensor x = g.dtype() == DType::BF16 ? cast(g, DType::F32) : g;
  return sum(mul(x, x)).item();
}

double clip_with(const std::vector<Tensor>& grads, double max_norm) {
  SPARROW_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be positive, got ", max_norm);
  double ss = 0;
  for (const Tensor& g : grads) ss += sum_squares(g);
  const double norm = std::sqrt(ss);
  if (std::isfinite(norm) && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (Tensor g : grads) mul_(g, scale);
  }
  return norm;
}
}  // namespace

double grad_norm(const Tensor& g) { return std::sqrt(sum_squares(g)); }

double clip_grad_norm(nn::ParameterBuffer& params, double max_norm) {
  params.check_bound();
  return clip_with({params.grad()}, max_norm);
}

double clip_grad_norm(std::vector<Tensor> grads, double max_norm) {
  std::vector<Tensor> defined;
  for (Tensor& g : grads)
    if (g.defined()) defined.push_back(g);
  return clip_with(defined, max_norm);
}

}  // namespace sparrow::optim
