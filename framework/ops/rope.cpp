// rope: one autograd node, nothing saved but the two numbers that define the rotation; the
// backward is the inverse rotation of the incoming gradient (math in ops/cpu/rope.cpp).
#include "framework/ops/cpu/rope.h"
#include "framework/autograd/node.h"
#include "framework/core/dispatch.h"
#include "framework/core/profile.h"
#include "framework/ops/cuda/rope.h"
#include "framework/ops/fused_common.h"
#include "framework/ops/ops.h"

namespace sparrow {

Tensor rope(const Tensor& x, int64_t position_offset, double base) {
  SPARROW_PROFILE_OP("rope");
  check_float("rope", x);
  SPARROW_CHECK(x.dim() == 4, "rope: expected x [B, H, N, D], got ", describe(x));
  SPARROW_CHECK(x.size(3) % 2 == 0, "rope: head dim D must be even, got x ", describe(x));
  SPARROW_CHECK(base > 0, "rope: base must be > 0, got ", base);

  const Tensor xc = fused::dense(x);
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  SPARROW_DISPATCH(x.device(), rope_apply, xc, y, position_offset, base, false);
  const Shape shape = x.shape();
  const DType dtype = x.dtype();
  const Device device = x.device();
  return record(y, "rope", {x}, [=](const Tensor& g) {
    Tensor dx = empty(shape, dtype, device);
    SPARROW_DISPATCH(dx.device(), rope_apply, fused::dense_as(g, dtype), dx, position_offset, base, true);
    return std::vector<Tensor>{dx};
  });
}

// One node for what the attention sublayer did with four (permute + copy, two ropes, and the
// copy of the gradient back through the permute): heads = [q, k, v] in the [3, B, H, T, D] layout
// the attention kernels read, q and k rotated. Forward and backward are one pass each.
Tensor rope_heads(const Tensor& qkv, int64_t heads, int64_t position_offset, double base) {
  SPARROW_PROFILE_OP("rope_heads");
  check_float("rope_heads", qkv);
  SPARROW_CHECK(qkv.dim() == 3 && heads > 0 && qkv.size(2) % (3 * heads) == 0,
                "rope_heads: expected qkv [B, T, 3·H·D] with H = ", heads, ", got ", describe(qkv));
  const int64_t B = qkv.size(0), T = qkv.size(1), D = qkv.size(2) / (3 * heads);
  SPARROW_CHECK(D % 2 == 0, "rope_heads: head dim D must be even, got ", D, " from ", describe(qkv));
  SPARROW_CHECK(base > 0, "rope_heads: base must be > 0, got ", base);
  const Tensor xc = fused::dense(qkv);
  Tensor y = empty({3, B, heads, T, D}, qkv.dtype(), qkv.device());
  SPARROW_DISPATCH(qkv.device(), rope_heads, xc, y, heads, position_offset, base, true);
  const Shape shape = qkv.shape();
  const DType dtype = qkv.dtype();
  const Device device = qkv.device();
  return record(y, "rope_heads", {qkv}, [=](const Tensor& g) {
    Tensor dx = empty(shape, dtype, device);
    SPARROW_DISPATCH(dx.device(), rope_heads, fused::dense_as(g, dtype), dx, heads, position_offset, base, false);
    return std::vector<Tensor>{dx};
  });
}

}  // namespace sparrow
