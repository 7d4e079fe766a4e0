// embedding(weight [V, D], ids I32 [...]) → [..., D]: a row gather. Its gradient scatters the
// output gradient's rows back into a zero [V, D] tensor, adding where ids repeat.
#include <sstream>

#include "framework/autograd/node.h"
#include "framework/core/dispatch.h"
#include "framework/core/profile.h"
#include "framework/ops/cpu/embedding.h"
#include "framework/ops/cuda/embedding.h"
#include "framework/ops/ops.h"

namespace sparrow {

namespace {

Tensor embedding_grad(const Tensor& g, const Tensor& ids, const Shape& weight_shape) {
  Tensor grad_out = g.contiguous();
  Tensor gw = zeros(weight_shape, g.dtype(), g.device());
  SPARROW_DISPATCH(gw.device(), embedding_backward, grad_out, ids, gw);
  return gw;
}

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& ids_in) {
  SPARROW_PROFILE_OP("embedding");
  check_same_device("embedding", weight, ids_in);
  check_dim("embedding", weight, 2);
  check_float("embedding", weight);
  SPARROW_CHECK(ids_in.dtype() == DType::I32, "embedding: ids must be i32, got ", describe(ids_in));
  const int64_t v = weight.size(0), d = weight.size(1);
  Tensor ids = ids_in.detach().contiguous();
  Tensor w = weight.detach().contiguous();
  Shape out_shape = ids.shape();
  out_shape.push_back(d);
  Tensor out = empty(out_shape, weight.dtype(), weight.device());
  if (ids.numel() > 0) {
    const Shape ids_shape = ids.shape(), w_shape = weight.shape();
    auto message = [ids_shape, w_shape, v](int64_t position, int64_t id) {
      std::ostringstream os;
      os << "embedding: id " << id << " at position " << position << " of ids " << shape_str(ids_shape)
         << " is outside [0, " << v << ") for weight " << shape_str(w_shape);
      return os.str();
    };
    SPARROW_DISPATCH(weight.device(), embedding_check_ids, ids, v, message);
    SPARROW_DISPATCH(weight.device(), embedding_forward, w, ids, out);
  }
  const Shape weight_shape = weight.shape();
  return record(out, "embedding", {weight, ids_in}, [ids, weight_shape](const Tensor& g) {
    return std::vector<Tensor>{embedding_grad(g, ids, weight_shape), Tensor()};
  });
}

}  // namespace sparrow
