// Linear: y = x Wᵀ + b with W [out, in] (PyTorch's layout, so checkpoints map one to one) and
// an optional bias [out]. x may have any leading dims: [..., in] → [..., out].
#pragma once
#include "framework/core/rng.h"
#include "framework/nn/module.h"

namespace sparrow::nn {

class Linear : public Module {
 public:
  // Weight and bias ~ U(−1/√in, 1/√in) (PyTorch's default); models re-initialise as they need.
  Linear(int64_t in_features, int64_t out_features, bool bias, Generator& gen, DType dtype = DType::F32,
         Device device = Device::cpu());
  // residual (optional, shaped as the output): added in the same GEMM, y = x Wᵀ + b + residual.
  Tensor forward(const Tensor& x, const Tensor& residual = Tensor()) const;

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  Tensor weight;  // [out, in]
  Tensor bias;    // [out], undefined without bias

 private:
  int64_t in_, out_;
};

}  // namespace sparrow::nn
