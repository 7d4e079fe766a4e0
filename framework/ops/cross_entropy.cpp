// cross_entropy: fused log-softmax + NLL as one autograd node over the logits. The forward saves
// the logits, the targets, each row's logsumexp and the count of counted targets (a one-element
// tensor on the logits' device: the GPU step never waits to read it); the backward
// is (softmax − onehot)·dL/count per row (math in ops/cpu/cross_entropy.cpp).
// The loss is f32 for f32 and bf16 logits (a bf16 loss would round away the third digit of what
// the trainer logs) and f64 for f64 logits; the logits' gradient takes the logits' dtype.
#include <algorithm>

#include "framework/autograd/node.h"
#include "framework/core/dispatch.h"
#include "framework/core/profile.h"
#include "framework/ops/cpu/cross_entropy.h"
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
  if (N > 0) {
    Tensor row_loss = empty({N}, sd, logits.device());
    SPARROW_DISPATCH(xc.device(), cross_entropy_rows, xc, tc, ignore_index, lse, row_loss);
    SPARROW_DISPATCH(xc.device(), cross_entropy_reduce, row_loss, tc, ignore_index, logits.size(1), loss, count);
  }

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

// The logits x·Wᵀ in the loss's dtype (f32, or f64 for f64): the product in x's dtype, then
// converted, as the model's unfused head + cross_entropy did.
namespace {
Tensor head_logits(const Tensor& x, const Tensor& w, DType sd) {
  Tensor l = matmul(x, w, false, true);
  return l.dtype() == sd ? l : l.to(sd);
}
}  // namespace

Tensor linear_cross_entropy(const Tensor& x, const Tensor& weight, const Tensor& targets, int64_t chunk,
                            int32_t ignore_index) {
  SPARROW_PROFILE_OP("linear_cross_entropy");
  check_float("linear_cross_entropy", x);
  SPARROW_CHECK(x.dim() == 2 && weight.dim() == 2 && targets.dim() == 1 && x.size(1) == weight.size(1) &&
                    targets.size(0) == x.size(0),
                "linear_cross_entropy: expected x [N, K], weight [V, K] and targets [N], got ", describe(x), ", ",
                describe(weight), " and ", describe(targets));
  SPARROW_CHECK(x.dtype() == weight.dtype(), "linear_cross_entropy: x ", describe(x), " and weight ", describe(weight),
                " differ in dtype");
  SPARROW_CHECK(targets.dtype() == DType::I32, "linear_cross_entropy: targets must be i32, got ", describe(targets));
  SPARROW_CHECK(weight.size(0) > 0, "linear_cross_entropy: empty vocabulary in ", describe(weight));
  SPARROW_CHECK(chunk > 0, "linear_cross_entropy: chunk of ", chunk, " rows");
  check_same_device("linear_cross_entropy", x, weight);
  check_same_device("linear_cross_entropy", x, targets);

  const Tensor xc = fused::dense(x), wc = fused::dense(weight), tc = fused::dense(targets);
  const DType sd = fused::stats_dtype(x.dtype());
  const int64_t N = x.size(0), V = weight.size(0);
  Tensor loss = zeros({}, sd, x.device());
  Tensor lse = empty({N}, sd, x.device());
  Tensor count = empty({1}, DType::I32, x.device());
  if (N > 0) {
    NoGradGuard no_grad;
    Tensor row_loss = empty({N}, sd, x.device());
    for (int64_t r0 = 0; r0 < N; r0 += chunk) {
      const int64_t r1 = std::min(N, r0 + chunk);
      Tensor lse_c = slice(lse, 0, r0, r1), loss_c = slice(row_loss, 0, r0, r1);
      SPARROW_DISPATCH(xc.device(), cross_entropy_rows, head_logits(slice(xc, 0, r0, r1), wc, sd), slice(tc, 0, r0, r1),
                       ignore_index, lse_c, loss_c);
    }
    SPARROW_DISPATCH(xc.device(), cross_entropy_reduce, row_loss, tc, ignore_index, V, loss, count);
  }

  return record(loss, "linear_cross_entropy", {x, weight}, [=](const Tensor& g) {
    Tensor dx = empty(xc.shape(), xc.dtype(), xc.device());
    // dW summed over the chunks in the stats dtype, then converted once (a bf16 running sum would
    // round at every chunk).
    Tensor dw = zeros(wc.shape(), sd, wc.device());
    if (N > 0) {
      Tensor gs = empty({}, sd, xc.device());  // dL in the stats dtype, read by the kernel
      copy_(gs, g);
      for (int64_t r0 = 0; r0 < N; r0 += chunk) {
        const int64_t r1 = std::min(N, r0 + chunk);
        const Tensor x_c = slice(xc, 0, r0, r1);
        const Tensor logits_c = head_logits(x_c, wc, sd);  // recomputed: never all N rows at once
        Tensor dl = empty(logits_c.shape(), sd, xc.device());
        SPARROW_DISPATCH(xc.device(), cross_entropy_backward, logits_c, slice(tc, 0, r0, r1), ignore_index,
                         slice(lse, 0, r0, r1), gs, count, dl);
        const Tensor dl_x = dl.dtype() == xc.dtype() ? dl : dl.to(xc.dtype());
        Tensor dx_c = slice(dx, 0, r0, r1);
        copy_(dx_c, matmul(dl_x, wc));
        accumulate_(dw, matmul(dl_x, x_c, true, false));
      }
    }
    return std::vector<Tensor>{dx, dw.dtype() == wc.dtype() ? dw : dw.to(wc.dtype())};
  });
}

}  // namespace sparrow
