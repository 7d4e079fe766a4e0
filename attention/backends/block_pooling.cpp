#include "attention/backends/block_pooling.h"

#include <vector>

#include "framework/ops/ops.h"

namespace sparrow::attn {

Tensor pool_means(const Tensor& x, int64_t group) {
  const int64_t B = x.size(0), H = x.size(1), N = x.size(2), D = x.size(3), full = N / group;
  std::vector<Tensor> parts;
  if (full > 0) parts.push_back(mean(reshape(slice(x, 2, 0, full * group), {B, H, full, group, D}), {3}));
  if (N % group) parts.push_back(mean(slice(x, 2, full * group, N), {2}, true));
  return parts.size() == 1 ? parts[0] : concat(parts, 2);
}

}  // namespace sparrow::attn
