// One Philox call gives the 4 draws of a group of 4 consecutive elements; groups in parallel.
#include "framework/ops/cpu/dropout.h"

#include "framework/core/rng.h"
#include "framework/ops/cpu/fused_util.h"

namespace sparrow::cpu {

namespace {
template <class T>
void apply_impl(const Tensor& in, Tensor& out, uint64_t seed, uint64_t first, uint32_t threshold, double scale) {
  using A = acc_t<T>;
  const int64_t n = in.numel(), groups = (n + 3) / 4;
  const T* ip = in.data<T>();
  T* op = out.data<T>();
  const A s = static_cast<A>(scale);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t g = 0; g < groups; ++g) {
    uint32_t r[4];
    Philox::generate(seed, first + static_cast<uint64_t>(g), r);
    for (int64_t k = 0; k < 4 && g * 4 + k < n; ++k) {
      const int64_t i = g * 4 + k;
      op[i] = store_as<T>(r[k] >= threshold ? load_acc(ip[i]) * s : A(0));
    }
  }
}
}  // namespace

void dropout_apply(const Tensor& in, Tensor& out, uint64_t seed, uint64_t first, uint32_t threshold, double scale) {
  SPARROW_CPU_FLOAT_DISPATCH(in.dtype(), "dropout", [&] { apply_impl<T>(in, out, seed, first, threshold, scale); });
}

}  // namespace sparrow::cpu
