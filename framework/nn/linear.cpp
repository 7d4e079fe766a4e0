#include "framework/nn/linear.h"

#include <cmath>

#include "framework/nn/init.h"
#include "framework/ops/ops.h"

namespace sparrow::nn {

Linear::Linear(int64_t in, int64_t out, bool with_bias, Generator& gen, DType dtype, Device device)
    : in_(in), out_(out) {
  SPARROW_CHECK(in > 0 && out > 0, "Linear: features must be positive, got in=", in, " out=", out);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  weight = empty({out, in}, dtype, device);
  init::uniform_(weight, gen, -bound, bound);
  register_parameter("weight", weight);
  if (with_bias) {
    bias = empty({out}, dtype, device);
    init::uniform_(bias, gen, -bound, bound);
    register_parameter("bias", bias, WeightDecay::No);
  }
}

Tensor Linear::forward(const Tensor& x, const Tensor& residual) const {
  SPARROW_CHECK(x.dim() >= 1 && x.size(-1) == in_, "Linear: input ", describe(x), " does not end in ", in_,
                " features");
  // Mixed precision: f32 master weights are cast to the activations' dtype at use (recorded, so
  // the gradient arrives back in f32).
  return sparrow::linear(x, weight.to(x.dtype()), bias.defined() ? bias.to(x.dtype()) : Tensor(), residual);
}

}  // namespace sparrow::nn
