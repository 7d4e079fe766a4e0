#include "framework/optim/sgd.h"

#include "framework/autograd/node.h"
#include "framework/ops/ops.h"

namespace sparrow::optim {

SGD::SGD(nn::ParameterBuffer params, SGDOptions opt) : params_(std::move(params)), opt_(opt) {
  SPARROW_CHECK(params_.defined(), "SGD: the parameter buffer was never packed");
  SPARROW_CHECK(opt.lr >= 0 && opt.momentum >= 0 && opt.weight_decay >= 0 && opt.dampening >= 0 && opt.dampening <= 1,
                "SGD: bad options lr=", opt.lr, " momentum=", opt.momentum, " dampening=", opt.dampening,
                " weight_decay=", opt.weight_decay);
  SPARROW_CHECK(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0),
                "SGD: nesterov needs momentum > 0 and dampening 0");
}

void SGD::step() {
  NoGradGuard ng;
  params_.check_bound();
  Tensor p = params_.data();
  Tensor d = params_.grad().clone();
  const int64_t k = params_.decay_numel();
  if (opt_.weight_decay > 0 && k > 0) {
    Tensor d_decay = make_view(d, {k}, {1}, 0);
    add_(d_decay, mul_scalar(make_view(p, {k}, {1}, p.offset()), opt_.weight_decay));
  }
  if (opt_.momentum > 0) {
    if (!momentum_.defined()) {
      momentum_ = d.clone();
    } else {
      mul_(momentum_, opt_.momentum);
      add_(momentum_, opt_.dampening == 0 ? d : mul_scalar(d, 1.0 - opt_.dampening));
    }
    if (opt_.nesterov)
      add_(d, mul_scalar(momentum_, opt_.momentum));
    else
      d = momentum_;
  }
  add_(p, mul_scalar(d, -opt_.lr));
  ++step_;
}

}  // namespace sparrow::optim
