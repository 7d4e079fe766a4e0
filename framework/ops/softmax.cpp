// softmax and log_softmax over any dim: one autograd node that saves its own output (detached);
// the backward needs only y (math in ops/cpu/softmax.cpp). The kernels walk the dim in place
// with a stride, so a non-last dim costs no transpose.
#include "framework/ops/cpu/softmax.h"
#include "framework/autograd/node.h"
#include "framework/core/dispatch.h"
#include "framework/core/profile.h"
#include "framework/ops/cuda/softmax.h"
#include "framework/ops/fused_common.h"
#include "framework/ops/ops.h"

namespace sparrow {

namespace {

Tensor softmax_op(bool log, const Tensor& x, int64_t dim) {
  const char* op = log ? "log_softmax" : "softmax";
  check_float(op, x);
  SPARROW_CHECK(x.dim() >= 1, op, ": needs at least one dim, got ", describe(x));
  const int64_t d = normalize_dim(dim, x.dim(), op);
  const Tensor xc = fused::dense(x);
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  SPARROW_DISPATCH(x.device(), softmax_forward, log, xc, d, y);
  const Tensor saved = y.detach();
  return record(y, op, {x}, [=](const Tensor& g) {
    Tensor dx = empty(saved.shape(), saved.dtype(), saved.device());
    SPARROW_DISPATCH(saved.device(), softmax_backward, log, fused::dense_as(g, saved.dtype()), saved, d, dx);
    return std::vector<Tensor>{dx};
  });
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
  SPARROW_PROFILE_OP("softmax");
  return softmax_op(false, x, dim);
}
Tensor log_softmax(const Tensor& x, int64_t dim) {
  SPARROW_PROFILE_OP("log_softmax");
  return softmax_op(true, x, dim);
}

}  // namespace sparrow
