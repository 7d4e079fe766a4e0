#pragma GCC diagnostic ignored "-Wunused-parameter"
// PLACEHOLDER for the fused ops while they are being written: delete this file once
// every op below has its real implementation.
#include "framework/ops/ops.h"

namespace sparrow {
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) { fail("layer_norm: not implemented yet"); }
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) { fail("rms_norm: not implemented yet"); }
Tensor softmax(const Tensor& x, int64_t dim) { fail("softmax: not implemented yet"); }
Tensor log_softmax(const Tensor& x, int64_t dim) { fail("log_softmax: not implemented yet"); }
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int32_t ignore_index) { fail("cross_entropy: not implemented yet"); }
Tensor dropout(const Tensor& x, double p, Generator& gen, bool training) { fail("dropout: not implemented yet"); }
Tensor rope(const Tensor& x, int64_t position_offset, double base) { fail("rope: not implemented yet"); }
}  // namespace sparrow
