#include "framework/nn/init.h"

#include <vector>

namespace sparrow::nn::init {

namespace {
// Writes host values into t (any device/dtype/strides) without recording autograd.
void assign(Tensor& t, const std::vector<double>& values) {
  Tensor host = from_vector(values, t.shape(), DType::F64, Device::cpu());
  copy_(t, host);
}
}  // namespace

void normal_(Tensor& t, Generator& gen, double mean, double stddev) {
  check_float("init::normal_", t);
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (double& x : v) x = mean + stddev * gen.normal();
  assign(t, v);
}

void uniform_(Tensor& t, Generator& gen, double lo, double hi) {
  check_float("init::uniform_", t);
  SPARROW_CHECK(lo <= hi, "init::uniform_: lo ", lo, " > hi ", hi);
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (double& x : v) x = lo + (hi - lo) * gen.uniform();
  assign(t, v);
}

void constant_(Tensor& t, double value) { assign(t, std::vector<double>(static_cast<size_t>(t.numel()), value)); }

}  // namespace sparrow::nn::init
