// layer_norm and rms_norm: one autograd node each over x, weight (and bias), with a hand-written
// backward (the math is in ops/cpu/norm.cpp) that can add x's other gradient into dx. The forward saves x, the per-row
// mean (layer_norm) and rstd = 1/√(var + ε), so the backward recomputes x̂ instead of storing it.
#include "framework/ops/cpu/norm.h"
#include "framework/autograd/node.h"
#include "framework/core/dispatch.h"
#include "framework/core/profile.h"
#include "framework/ops/cuda/norm.h"
#include "framework/ops/fused_common.h"
#include "framework/ops/ops.h"

namespace sparrow {

namespace {

void check_param(const char* op, const char* what, const Tensor& x, const Tensor& p) {
  SPARROW_CHECK(p.dim() == 1 && p.size(0) == x.size(-1), op, ": ", what, " ", describe(p),
                " does not match the last dim of x ", describe(x));
  check_same_device(op, x, p);
  check_same_dtype(op, x, p);
}

Tensor norm(bool centered, const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = centered ? "layer_norm" : "rms_norm";
  check_float(op, x);
  SPARROW_CHECK(x.dim() >= 1 && x.size(-1) > 0, op, ": x must have a non-empty last dim, got ", describe(x));
  SPARROW_CHECK(weight.defined(), op, ": weight is undefined (x ", describe(x), ")");
  check_param(op, "weight", x, weight);
  if (bias.defined()) check_param(op, "bias", x, bias);
  SPARROW_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);

  const Tensor xc = fused::dense(x), wc = fused::dense(weight);
  const Tensor bc = bias.defined() ? fused::dense(bias) : Tensor();
  const int64_t rows = x.numel() / x.size(-1);
  const DType sd = fused::stats_dtype(x.dtype());
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  Tensor mean = centered ? empty({rows}, sd, x.device()) : Tensor();
  Tensor rstd = empty({rows}, sd, x.device());
  if (rows > 0) SPARROW_DISPATCH(x.device(), norm_forward, centered, xc, wc, bc, eps, y, mean, rstd);

  const bool gx = x.requires_grad(), gw = weight.requires_grad(), gb = bias.defined() && bias.requires_grad();
  std::vector<Tensor> inputs{x, weight};
  if (centered) inputs.push_back(bias);
  // The backward folds x's addend (the residual stream's gradient from the skip connection, see
  // Node::backward_adding) into dx in the same pass when it is laid out like x.
  return record(y, op, inputs, [=](const Tensor& g, const std::vector<Tensor>& addends) {
    const Tensor add_x = addends.empty() ? Tensor() : addends[0];
    const bool fold = gx && add_x.defined() && add_x.is_contiguous() && add_x.shape() == xc.shape() &&
                      add_x.dtype() == xc.dtype() && add_x.device() == xc.device();
    Tensor dx = gx ? empty(xc.shape(), xc.dtype(), xc.device()) : Tensor();
    Tensor dw = gw ? empty(wc.shape(), wc.dtype(), wc.device()) : Tensor();
    Tensor db = gb ? empty(bc.shape(), bc.dtype(), bc.device()) : Tensor();
    if (rows > 0) {
      const Tensor gc = fused::dense_as(g, xc.dtype());
      SPARROW_DISPATCH(xc.device(), norm_backward, centered, gc, xc, wc, mean, rstd, fold ? add_x : Tensor(), dx, dw,
                       db);
    } else {
      if (dw.defined()) dw = zeros(wc.shape(), wc.dtype(), wc.device());
      if (db.defined()) db = zeros(bc.shape(), bc.dtype(), bc.device());
    }
    if (add_x.defined() && !fold) dx = dx.defined() ? add(dx, add_x) : add_x;
    std::vector<Tensor> grads{dx, dw};
    if (centered) grads.push_back(db);
    return grads;
  });
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  SPARROW_PROFILE_OP("layer_norm");
  return norm(true, x, weight, bias, eps);
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  SPARROW_PROFILE_OP("rms_norm");
  return norm(false, x, weight, Tensor(), eps);
}

}  // namespace sparrow
