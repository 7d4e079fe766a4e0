// cross_entropy: fused log-softmax + NLL as one autograd node over the logits. The forward saves
// the logits, the targets, each row's logsumexp and the count of counted targets (a one-element
// tensor on the logits' device: the GPU step never waits to read it); the backward
// is (softmax − onehot)·dL/count per row (math in ops/cpu/cross_entropy.cpp).
// The loss is f32 for f32 and bf16 logits (a bf16 loss would round away the third digit of what
// the trainer logs) and f64 for f64 logits; the logits' gradient takes the logits' dtype.
#include "framework/ops/cpu/cross_entropy.h"
#include "framework/autograd/node.h"
#include "framework/core/dispatch.h"
#include "framework/core/profile.h"
#include "framework/ops/cuda/cross_entropy.h"
#include "framework/ops/fused_common.h"
#include "framework/ops/ops.h"

namespace sparrow {

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int32_t ignore_index) {
  SPARROW_PROFILE_OP("cross_entropy");
  check_float("cross_entropy", logits);
  SPARROW_CHECK(logits.dim() == 2 && targets.dim() == 1 && targets.size(0) == logits.size(0),
                "cross_entropy: expected logits [N, V] and targets [N], got ", describe(logits), " and ",
                describe(targets));
  SPARROW_CHECK(targets.dtype() == DType::I32, "cross_entropy: targets must be i32, got ", describe(targets));
  SPARROW_CHECK(logits.size(1) > 0, "cross_entropy: empty vocabulary in ", describe(logits));
  check_same_device("cross_entropy", logits, targets);

  const Tensor xc = fused::dense(logits), tc = fused::dense(targets);
  const DType sd = fused::stats_dtype(logits.dtype());
  const int64_t N = logits.size(0);
  Tensor loss = zeros({}, sd, logits.device());
  Tensor lse = empty({N}, sd, logits.device());
  Tensor count = empty({1}, DType::I32, logits.device());
  if (N > 0) SPARROW_DISPATCH(xc.device(), cross_entropy_forward, xc, tc, ignore_index, loss, lse, count);

  return record(loss, "cross_entropy", {logits}, [=](const Tensor& g) {
    Tensor dx = empty(xc.shape(), xc.dtype(), xc.device());
    if (N > 0) {
      Tensor gs = empty({}, sd, xc.device());  // dL in the stats dtype, read by the kernel
      copy_(gs, g);
      SPARROW_DISPATCH(xc.device(), cross_entropy_backward, xc, tc, ignore_index, lse, gs, count, dx);
    }
    return std::vector<Tensor>{dx};
  });
}

}  // namespace sparrow
