// dropout: one autograd node that stores no mask. Element i (row-major) keeps when its Philox
// draw u_i = Philox(seed, first + i/4)[i % 4] satisfies u_i ≥ ⌊p·2³²⌋ (probability 1 − p, an
// integer test so CPU and GPU agree bit for bit), and survivors scale by 1/(1 − p). The backward
// regenerates the same mask from (seed, first): dx = dy · mask / (1 − p).
#include <cmath>

#include "framework/autograd/node.h"
#include "framework/core/dispatch.h"
#include "framework/core/profile.h"
#include "framework/core/rng.h"
#include "framework/ops/cpu/dropout.h"
#include "framework/ops/cuda/dropout.h"
#include "framework/ops/fused_common.h"
#include "framework/ops/ops.h"

namespace sparrow {

Tensor dropout(const Tensor& x, double p, Generator& gen, bool training) {
  SPARROW_PROFILE_OP("dropout");
  SPARROW_CHECK(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1), got ", p, " (x ", describe(x), ")");
  check_float("dropout", x);
  if (!training || p == 0.0) return x;

  const int64_t n = x.numel();
  const uint64_t seed = gen.seed();
  const uint64_t first = gen.reserve(static_cast<uint64_t>((n + 3) / 4));  // 4 draws per counter
  const uint32_t threshold = static_cast<uint32_t>(std::min(std::floor(p * 4294967296.0), 4294967295.0));
  const double scale = 1.0 / (1.0 - p);

  const Tensor xc = fused::dense(x);
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  if (n > 0) SPARROW_DISPATCH(x.device(), dropout_apply, xc, y, seed, first, threshold, scale);
  const Shape shape = x.shape();
  const DType dtype = x.dtype();
  const Device device = x.device();
  return record(y, "dropout", {x}, [=](const Tensor& g) {
    Tensor dx = empty(shape, dtype, device);
    if (n > 0)
      SPARROW_DISPATCH(dx.device(), dropout_apply, fused::dense_as(g, dtype), dx, seed, first, threshold, scale);
    return std::vector<Tensor>{dx};
  });
}

}  // namespace sparrow
