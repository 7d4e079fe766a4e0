// Front ends of the two-operand elementwise ops and the in-place ops: checks, broadcasting,
// device dispatch, autograd records. Gradients of a broadcast input are summed back to its
// shape with sum_to.
#include "framework/ops/cpu/elementwise.h"
#include "framework/autograd/node.h"
#include "framework/core/dispatch.h"
#include "framework/core/profile.h"
#include "framework/ops/cpu/unary.h"
#include "framework/ops/cuda/elementwise.h"
#include "framework/ops/cuda/unary.h"
#include "framework/ops/ops.h"

namespace sparrow {

namespace {

Tensor binary_output(const char* op, const Tensor& a, const Tensor& b) {
  check_same_device(op, a, b);
  check_same_dtype(op, a, b);
  check_float(op, a);
  return empty(broadcast_shapes(a.shape(), b.shape(), op), a.dtype(), a.device());
}

// In-place ops may not rewrite a recorded result: the graph would silently see other values.
void check_inplace(const char* op, const Tensor& a) {
  SPARROW_CHECK(!(grad_enabled() && a.requires_grad() && !a.is_leaf()), op,
                ": in place on a tensor recorded by autograd (", describe(a),
                "); use the out-of-place op or a NoGradGuard");
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  SPARROW_PROFILE_OP("add");
  Tensor out = binary_output("add", a, b);
  SPARROW_DISPATCH(out.device(), add, a, b, out);
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  return record(out, "add", {a, b}, [ga, gb, sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{ga ? sum_to(g, sa) : Tensor(), gb ? sum_to(g, sb) : Tensor()};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  SPARROW_PROFILE_OP("sub");
  Tensor out = binary_output("sub", a, b);
  SPARROW_DISPATCH(out.device(), sub, a, b, out);
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  return record(out, "sub", {a, b}, [ga, gb, sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{ga ? sum_to(g, sa) : Tensor(), gb ? sum_to(neg(g), sb) : Tensor()};
  });
}

// d(ab) = b·da + a·db
Tensor mul(const Tensor& a, const Tensor& b) {
  SPARROW_PROFILE_OP("mul");
  Tensor out = binary_output("mul", a, b);
  SPARROW_DISPATCH(out.device(), mul, a, b, out);
  if (!needs_grad({&a, &b})) return out;
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  Tensor as = gb ? a.detach() : Tensor(), bs = ga ? b.detach() : Tensor();
  return record(out, "mul", {a, b}, [ga, gb, as, bs, sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{ga ? sum_to(mul(g, bs), sa) : Tensor(), gb ? sum_to(mul(g, as), sb) : Tensor()};
  });
}

// d(a/b) = da/b − (a/b)·db/b, so with q = g/b: ga = q, gb = −q·out.
Tensor div(const Tensor& a, const Tensor& b) {
  SPARROW_PROFILE_OP("div");
  Tensor out = binary_output("div", a, b);
  SPARROW_DISPATCH(out.device(), div, a, b, out);
  if (!needs_grad({&a, &b})) return out;
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  Tensor bs = b.detach(), ys = gb ? out.detach() : Tensor();
  return record(out, "div", {a, b}, [ga, gb, bs, ys, sa = a.shape(), sb = b.shape()](const Tensor& g) {
    Tensor q = div(g, bs);
    return std::vector<Tensor>{ga ? sum_to(q, sa) : Tensor(), gb ? sum_to(neg(mul(q, ys)), sb) : Tensor()};
  });
}

void add_(Tensor& a, const Tensor& b) {
  SPARROW_PROFILE_OP("add_");
  check_same_device("add_", a, b);
  check_same_dtype("add_", a, b);
  check_float("add_", a);
  SPARROW_CHECK(broadcast_shapes(a.shape(), b.shape(), "add_") == a.shape(), "add_: ", shape_str(b.shape()),
                " does not broadcast to the destination's ", shape_str(a.shape()));
  check_inplace("add_", a);
  SPARROW_DISPATCH(a.device(), add, a, b, a);
}

void mul_(Tensor& a, double s) {
  SPARROW_PROFILE_OP("mul_");
  check_float("mul_", a);
  check_inplace("mul_", a);
  SPARROW_DISPATCH(a.device(), mul_scalar, a, s, a);
}

void fill_(Tensor& a, double v) {
  SPARROW_PROFILE_OP("fill_");
  check_inplace("fill_", a);
  SPARROW_DISPATCH(a.device(), fill, a, v);
}

}  // namespace sparrow
