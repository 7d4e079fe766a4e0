#include "framework/dist/sum_over_ranks.h"

#include "framework/autograd/node.h"

namespace sparrow::dist {

namespace {

Tensor summed(const Tensor& x, Communicator& comm) {
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  copy_(y, x.detach());
  comm.all_reduce(y)->wait();
  return y;
}

}  // namespace

Tensor sum_over_ranks(const Tensor& x, Communicator& comm) {
  Tensor y = summed(x, comm);
  Communicator* c = &comm;
  return record(y, "sum_over_ranks", {x}, [c](const Tensor& g) { return std::vector<Tensor>{summed(g, *c)}; });
}

}  // namespace sparrow::dist
