#include "framework/nn/norm.h"

#include "framework/ops/ops.h"

namespace sparrow::nn {

namespace {
void check_last_dim(const char* op, const Tensor& x, int64_t dim) {
  SPARROW_CHECK(x.dim() >= 1 && x.size(-1) == dim, op, ": input ", describe(x), " does not end in ", dim);
}
}  // namespace

LayerNorm::LayerNorm(int64_t dim, double eps, bool with_bias, DType dtype, Device device) : dim_(dim), eps_(eps) {
  SPARROW_CHECK(dim > 0, "LayerNorm: dim must be positive, got ", dim);
  weight = register_parameter("weight", ones({dim}, dtype, device), WeightDecay::No);
  if (with_bias) bias = register_parameter("bias", zeros({dim}, dtype, device), WeightDecay::No);
}

Tensor LayerNorm::forward(const Tensor& x) const {
  check_last_dim("LayerNorm", x, dim_);
  // Parameters cast to the activations' dtype at use (mixed precision; gradient flows back in f32).
  return layer_norm(x, weight.to(x.dtype()), bias.defined() ? bias.to(x.dtype()) : bias, eps_);
}

RMSNorm::RMSNorm(int64_t dim, double eps, DType dtype, Device device) : dim_(dim), eps_(eps) {
  SPARROW_CHECK(dim > 0, "RMSNorm: dim must be positive, got ", dim);
  weight = register_parameter("weight", ones({dim}, dtype, device), WeightDecay::No);
}

Tensor RMSNorm::forward(const Tensor& x) const {
  check_last_dim("RMSNorm", x, dim_);
  return rms_norm(x, weight.to(x.dtype()), eps_);
}

}  // namespace sparrow::nn
