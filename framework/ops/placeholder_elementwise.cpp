#pragma GCC diagnostic ignored "-Wunused-parameter"
// PLACEHOLDER for the elementwise ops while they are being written: delete this file once
// every op below has its real implementation.
#include "framework/ops/ops.h"

namespace sparrow {
Tensor add(const Tensor& a, const Tensor& b) { fail("add: not implemented yet"); }
Tensor sub(const Tensor& a, const Tensor& b) { fail("sub: not implemented yet"); }
Tensor mul(const Tensor& a, const Tensor& b) { fail("mul: not implemented yet"); }
Tensor div(const Tensor& a, const Tensor& b) { fail("div: not implemented yet"); }
void add_(Tensor& a, const Tensor& b) { fail("add_: not implemented yet"); }
void mul_(Tensor& a, double s) { fail("mul_: not implemented yet"); }
void fill_(Tensor& a, double v) { fail("fill_: not implemented yet"); }
Tensor add_scalar(const Tensor& a, double s) { fail("add_scalar: not implemented yet"); }
Tensor mul_scalar(const Tensor& a, double s) { fail("mul_scalar: not implemented yet"); }
Tensor pow_scalar(const Tensor& a, double p) { fail("pow_scalar: not implemented yet"); }
Tensor neg(const Tensor& a) { fail("neg: not implemented yet"); }
Tensor exp(const Tensor& a) { fail("exp: not implemented yet"); }
Tensor log(const Tensor& a) { fail("log: not implemented yet"); }
Tensor tanh(const Tensor& a) { fail("tanh: not implemented yet"); }
Tensor sqrt(const Tensor& a) { fail("sqrt: not implemented yet"); }
Tensor gelu(const Tensor& a) { fail("gelu: not implemented yet"); }
Tensor silu(const Tensor& a) { fail("silu: not implemented yet"); }
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) { fail("sum: not implemented yet"); }
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) { fail("mean: not implemented yet"); }
Tensor max(const Tensor& a, int64_t dim, bool keepdim) { fail("max: not implemented yet"); }
Tensor sum_to(const Tensor& a, const Shape& shape) { fail("sum_to: not implemented yet"); }
}  // namespace sparrow
