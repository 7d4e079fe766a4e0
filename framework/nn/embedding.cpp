#include "framework/nn/embedding.h"

#include "framework/nn/init.h"
#include "framework/ops/ops.h"

namespace sparrow::nn {

Embedding::Embedding(int64_t num, int64_t dim, Generator& gen, double init_std, DType dtype, Device device)
    : num_(num), dim_(dim) {
  SPARROW_CHECK(num > 0 && dim > 0, "Embedding: sizes must be positive, got ", num, " x ", dim);
  weight = empty({num, dim}, dtype, device);
  init::normal_(weight, gen, 0.0, init_std);
  register_parameter("weight", weight);
}

Tensor Embedding::forward(const Tensor& ids) const { return embedding(weight, ids); }

}  // namespace sparrow::nn
