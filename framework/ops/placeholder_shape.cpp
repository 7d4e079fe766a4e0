#pragma GCC diagnostic ignored "-Wunused-parameter"
// PLACEHOLDER for the shape ops while they are being written: delete this file once
// every op below has its real implementation.
#include "framework/ops/ops.h"

namespace sparrow {
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) { fail("matmul: not implemented yet"); }
Tensor reshape(const Tensor& a, const Shape& shape) { fail("reshape: not implemented yet"); }
Tensor transpose(const Tensor& a, int64_t d0, int64_t d1) { fail("transpose: not implemented yet"); }
Tensor permute(const Tensor& a, const std::vector<int64_t>& order) { fail("permute: not implemented yet"); }
Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end) { fail("slice: not implemented yet"); }
Tensor concat(const std::vector<Tensor>& parts, int64_t dim) { fail("concat: not implemented yet"); }
std::vector<Tensor> split(const Tensor& a, const std::vector<int64_t>& sizes, int64_t dim) { fail("split: not implemented yet"); }
Tensor contiguous(const Tensor& a) { fail("contiguous: not implemented yet"); }
Tensor cast(const Tensor& a, DType dtype) { fail("cast: not implemented yet"); }
Tensor to_device(const Tensor& a, Device d) { fail("to_device: not implemented yet"); }
Tensor embedding(const Tensor& weight, const Tensor& ids) { fail("embedding: not implemented yet"); }
}  // namespace sparrow
