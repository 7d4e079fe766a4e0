#include "framework/optim/clip.h"

#include <cmath>

#include "framework/autograd/node.h"
#include "framework/core/dispatch.h"
#include "framework/ops/ops.h"
#include "framework/optim/cpu/grad_norm.h"
#include "framework/optim/cuda/grad_norm.h"

namespace sparrow::optim {

namespace {
double sum_squares(const Tensor& g) {
  NoGradGuard ng;
  if (g.device().is_cpu() && g.is_contiguous()) {
    if (g.dtype() == DType::F32) return cpu::sum_squares(g.data<float>(), g.numel());
    if (g.dtype() == DType::F64) return cpu::sum_squares(g.data<double>(), g.numel());
  }
  if (g.device().is_cuda() && g.is_contiguous() && g.dtype() == DType::F32) {
    Tensor norm = empty({1}, DType::F32, g.device());
    grad_norm_to(g, norm);
    const double n = norm.item();
    return n * n;
  }
  // Other gradients (strided, bf16): one reduction with the ops, in f32 at least.
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

void grad_norm_to(const Tensor& g, Tensor& norm) {
  SPARROW_CHECK(g.dtype() == DType::F32 && g.is_contiguous(), "grad_norm_to: needs a contiguous f32 gradient, got ",
                describe(g));
  SPARROW_CHECK(norm.dtype() == DType::F32 && norm.numel() == 1 && norm.is_contiguous() && norm.device() == g.device(),
                "grad_norm_to: norm must be one f32 element on ", g.device().str(), ", got ", describe(norm));
  SPARROW_DISPATCH(g.device(), grad_norm, g, norm);
}

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
