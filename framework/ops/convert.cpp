// Dtype casts and device moves, both recorded: the gradient of a cast is the incoming gradient
// cast back to the input's dtype, the gradient of a move is moved back to the input's device.
// Both go through copy_, which handles any strides, dtype pairs and device pairs.
#include "framework/autograd/node.h"
#include "framework/core/profile.h"
#include "framework/ops/ops.h"

namespace sparrow {

Tensor cast(const Tensor& a, DType dtype) {
  SPARROW_PROFILE_OP("cast");
  if (a.dtype() == dtype) return a;
  Tensor out = empty(a.shape(), dtype, a.device());
  copy_(out, a);
  // Integer results carry no gradient (an integer tensor cannot require grad).
  if (!is_floating(dtype)) return out;
  const DType back = a.dtype();
  // Into a leaf (f32 master weights cast to bf16 for compute) the gradient is handed on in its own
  // dtype: the engine converts it while adding it to the leaf's gradient, in one pass.
  const bool into_leaf = a.is_leaf();
  return record(out, "cast", {a},
                [back, into_leaf](const Tensor& g) { return std::vector<Tensor>{into_leaf ? g : cast(g, back)}; });
}

Tensor to_device(const Tensor& a, Device d) {
  SPARROW_PROFILE_OP("to_device");
  if (a.device() == d) return a;
  Tensor out = empty(a.shape(), a.dtype(), d);
  copy_(out, a);
  const Device back = a.device();
  return record(out, "to_device", {a}, [back](const Tensor& g) { return std::vector<Tensor>{to_device(g, back)}; });
}

}  // namespace sparrow
