// rope: one autograd node, nothing saved but the two numbers that define the rotation; the
// backward is the inverse rotation of the incoming gradient (math in ops/cpu/rope.cpp).
#include "framework/autograd/node.h"
#include "framework/ops/cpu/rope.h"
#include "framework/ops/fused_common.h"
#include "framework/ops/ops.h"
#ifdef SPARROW_WITH_CUDA
#include "framework/ops/cuda/rope.h"
#endif

namespace sparrow {

Tensor rope(const Tensor& x, int64_t position_offset, double base) {
  check_float("rope", x);
  SPARROW_CHECK(x.dim() == 4, "rope: expected x [B, H, N, D], got ", describe(x));
  SPARROW_CHECK(x.size(3) % 2 == 0, "rope: head dim D must be even, got x ", describe(x));
  SPARROW_CHECK(base > 0, "rope: base must be > 0, got ", base);

  const Tensor xc = fused::dense(x);
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  SPARROW_FUSED_DISPATCH(x, rope_apply, xc, y, position_offset, base, false);
  const Shape shape = x.shape();
  const DType dtype = x.dtype();
  const Device device = x.device();
  return record(y, "rope", {x}, [=](const Tensor& g) {
    Tensor dx = empty(shape, dtype, device);
    SPARROW_FUSED_DISPATCH(dx, rope_apply, fused::dense_as(g, dtype), dx, position_offset, base, true);
    return std::vector<Tensor>{dx};
  });
}

}  // namespace sparrow
