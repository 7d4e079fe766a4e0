// SGD with momentum over a packed model (torch.optim.SGD's update):
//   d ← g + wd_i·p                 (L2 weight decay, decaying prefix of the buffer only)
//   b ← d (first step), else b ← μ·b + (1 − dampening)·d
//   d ← d + μ·b (nesterov) or b
//   p ← p − lr·d
// Built on the in-place ops, so it runs wherever the buffer lives.
#pragma once
#include "framework/nn/parameter_buffer.h"

namespace sparrow::optim {

struct SGDOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD {
 public:
  explicit SGD(nn::ParameterBuffer params, SGDOptions opt = {});
  void step();
  void zero_grad() { params_.zero_grad(); }
  void set_lr(double lr) { opt_.lr = lr; }
  double lr() const { return opt_.lr; }
  int64_t step_count() const { return step_; }
  const Tensor& momentum_buffer() const { return momentum_; }  // undefined until the first step

 private:
  nn::ParameterBuffer params_;
  SGDOptions opt_;
  int64_t step_ = 0;
  Tensor momentum_;
};

}  // namespace sparrow::optim
