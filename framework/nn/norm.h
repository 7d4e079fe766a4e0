// Normalisation layers over the last dim, on the fused layer_norm / rms_norm ops.
//   LayerNorm: y = (x − μ)/√(σ² + eps) · w + b      (w = 1, b = 0 at init)
//   RMSNorm:   y = x/√(mean(x²) + eps) · w           (w = 1 at init)
// Their parameters carry WeightDecay::No.
#pragma once
#include "framework/nn/module.h"

namespace sparrow::nn {

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5, bool bias = true, DType dtype = DType::F32,
                     Device device = Device::cpu());
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;  // [dim]; bias undefined when built without

 private:
  int64_t dim_;
  double eps_;
};

class RMSNorm : public Module {
 public:
  explicit RMSNorm(int64_t dim, double eps = 1e-6, DType dtype = DType::F32, Device device = Device::cpu());
  Tensor forward(const Tensor& x) const;
  Tensor weight;  // [dim]

 private:
  int64_t dim_;
  double eps_;
};

}  // namespace sparrow::nn
