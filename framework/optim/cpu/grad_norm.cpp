#include "framework/optim/cpu/grad_norm.h"

#include <cmath>

namespace sparrow::cpu {

void grad_norm(const Tensor& x, Tensor& norm) {
  norm.data<float>()[0] = static_cast<float>(std::sqrt(sum_squares(x.data<float>(), x.numel())));
}

}  // namespace sparrow::cpu
