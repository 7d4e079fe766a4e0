// Front ends of the scalar and unary ops: checks, device dispatch, autograd records. Each
// backward is a short expression in other ops, or one fused kernel (tanh, gelu, silu) where the
// chain of ops would be long.
#include "framework/ops/cpu/unary.h"
#include "framework/autograd/node.h"
#include "framework/core/dispatch.h"
#include "framework/core/profile.h"
#include "framework/ops/cpu/elementwise.h"
#include "framework/ops/cuda/elementwise.h"
#include "framework/ops/cuda/unary.h"
#include "framework/ops/ops.h"

namespace sparrow {

namespace {

Tensor output_like(const char* op, const Tensor& a) {
  check_float(op, a);
  return empty(a.shape(), a.dtype(), a.device());
}

enum class FusedGrad { Tanh, Gelu, Silu };

// g·f'(x) in one kernel over (g, x); for tanh, x is the saved output y and f'(x) = 1 − y².
Tensor fused_grad(FusedGrad k, const char* op, const Tensor& g, const Tensor& x) {
  check_same_device(op, g, x);
  check_same_dtype(op, g, x);
  SPARROW_CHECK(g.shape() == x.shape(), op, ": gradient ", describe(g), " for an input ", describe(x));
  Tensor gx = empty(x.shape(), x.dtype(), x.device());
  switch (k) {
    case FusedGrad::Tanh:
      SPARROW_DISPATCH(gx.device(), tanh_backward, g, x, gx);
      break;
    case FusedGrad::Gelu:
      SPARROW_DISPATCH(gx.device(), gelu_backward, g, x, gx);
      break;
    case FusedGrad::Silu:
      SPARROW_DISPATCH(gx.device(), silu_backward, g, x, gx);
      break;
  }
  return gx;
}

}  // namespace

Tensor add_scalar(const Tensor& a, double s) {
  SPARROW_PROFILE_OP("add_scalar");
  Tensor out = output_like("add_scalar", a);
  SPARROW_DISPATCH(out.device(), add_scalar, a, s, out);
  return record(out, "add_scalar", {a}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor mul_scalar(const Tensor& a, double s) {
  SPARROW_PROFILE_OP("mul_scalar");
  Tensor out = output_like("mul_scalar", a);
  SPARROW_DISPATCH(out.device(), mul_scalar, a, s, out);
  return record(out, "mul_scalar", {a}, [s](const Tensor& g) { return std::vector<Tensor>{mul_scalar(g, s)}; });
}

// d(x^p) = p·x^(p−1) dx
Tensor pow_scalar(const Tensor& a, double p) {
  SPARROW_PROFILE_OP("pow_scalar");
  Tensor out = output_like("pow_scalar", a);
  SPARROW_DISPATCH(out.device(), pow_scalar, a, p, out);
  if (!needs_grad({&a})) return out;
  return record(out, "pow_scalar", {a}, [p, x = a.detach()](const Tensor& g) {
    if (p == 0.0) return std::vector<Tensor>{zeros(x.shape(), x.dtype(), x.device())};
    if (p == 1.0) return std::vector<Tensor>{g};
    return std::vector<Tensor>{mul(g, mul_scalar(pow_scalar(x, p - 1.0), p))};
  });
}

Tensor neg(const Tensor& a) {
  SPARROW_PROFILE_OP("neg");
  Tensor out = output_like("neg", a);
  SPARROW_DISPATCH(out.device(), neg, a, out);
  return record(out, "neg", {a}, [](const Tensor& g) { return std::vector<Tensor>{neg(g)}; });
}

// d(e^x) = e^x dx: the output is the derivative.
Tensor exp(const Tensor& a) {
  SPARROW_PROFILE_OP("exp");
  Tensor out = output_like("exp", a);
  SPARROW_DISPATCH(out.device(), exp, a, out);
  if (!needs_grad({&a})) return out;
  return record(out, "exp", {a}, [y = out.detach()](const Tensor& g) { return std::vector<Tensor>{mul(g, y)}; });
}

Tensor log(const Tensor& a) {
  SPARROW_PROFILE_OP("log");
  Tensor out = output_like("log", a);
  SPARROW_DISPATCH(out.device(), log, a, out);
  if (!needs_grad({&a})) return out;
  return record(out, "log", {a}, [x = a.detach()](const Tensor& g) { return std::vector<Tensor>{div(g, x)}; });
}

// d tanh(x) = (1 − tanh²x) dx, from the saved output.
Tensor tanh(const Tensor& a) {
  SPARROW_PROFILE_OP("tanh");
  Tensor out = output_like("tanh", a);
  SPARROW_DISPATCH(out.device(), tanh, a, out);
  if (!needs_grad({&a})) return out;
  return record(out, "tanh", {a}, [y = out.detach()](const Tensor& g) {
    return std::vector<Tensor>{fused_grad(FusedGrad::Tanh, "tanh backward", g, y)};
  });
}

// d√x = dx / (2√x), from the saved output.
Tensor sqrt(const Tensor& a) {
  SPARROW_PROFILE_OP("sqrt");
  Tensor out = output_like("sqrt", a);
  SPARROW_DISPATCH(out.device(), sqrt, a, out);
  if (!needs_grad({&a})) return out;
  return record(out, "sqrt", {a},
                [y = out.detach()](const Tensor& g) { return std::vector<Tensor>{mul_scalar(div(g, y), 0.5)}; });
}

Tensor gelu(const Tensor& a) {
  SPARROW_PROFILE_OP("gelu");
  Tensor out = output_like("gelu", a);
  SPARROW_DISPATCH(out.device(), gelu, a, out);
  if (!needs_grad({&a})) return out;
  return record(out, "gelu", {a}, [x = a.detach()](const Tensor& g) {
    return std::vector<Tensor>{fused_grad(FusedGrad::Gelu, "gelu backward", g, x)};
  });
}

Tensor silu(const Tensor& a) {
  SPARROW_PROFILE_OP("silu");
  Tensor out = output_like("silu", a);
  SPARROW_DISPATCH(out.device(), silu, a, out);
  if (!needs_grad({&a})) return out;
  return record(out, "silu", {a}, [x = a.detach()](const Tensor& g) {
    return std::vector<Tensor>{fused_grad(FusedGrad::Silu, "silu backward", g, x)};
  });
}

}  // namespace sparrow
