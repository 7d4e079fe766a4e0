// CPU merge_by_lse (see kernels/lse_merge.h): one pass over the rows.
#include <cmath>
#include <limits>

#include "attention/kernels/lse_merge.h"

namespace sparrow::attn::cpu {

namespace {

template <class Acc>
Acc widen(float x) {
  return x;
}
template <class Acc>
Acc widen(double x) {
  return static_cast<Acc>(x);
}
template <class Acc>
Acc widen(bf16 x) {
  return static_cast<float>(x);
}

template <class Acc, class Part>
void merge_rows(Acc* out, Acc* lse, const Part* part, const Acc* lse_part, int64_t rows, int64_t D) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const Acc a = lse[r], b = lse_part[r];
    if (b == -std::numeric_limits<Acc>::infinity()) continue;  // the part saw no key of this row
    const Acc m = a > b ? a : b;
    const Acc wa = std::exp(a - m), wb = std::exp(b - m);  // wa = 0 when a = −inf
    const Acc s = wa + wb;
    lse[r] = m + std::log(s);
    Acc* o = out + r * D;
    const Part* p = part + r * D;
    for (int64_t d = 0; d < D; ++d) o[d] = (wa * o[d] + wb * widen<Acc>(p[d])) / s;
  }
}

template <class Acc>
void merge_typed(Tensor& out_acc, Tensor& lse_acc, const Tensor& out_part, const Tensor& lse_part) {
  const int64_t rows = lse_acc.numel(), D = out_acc.size(-1);
  Acc* o = out_acc.data<Acc>();
  Acc* l = lse_acc.data<Acc>();
  const Acc* lp = lse_part.data<Acc>();
  switch (out_part.dtype()) {
    case DType::F32:
      return merge_rows(o, l, out_part.data<float>(), lp, rows, D);
    case DType::F64:
      return merge_rows(o, l, out_part.data<double>(), lp, rows, D);
    case DType::BF16:
      return merge_rows(o, l, out_part.data<bf16>(), lp, rows, D);
    case DType::I32:
      break;
  }
  fail("merge_by_lse: part dtype ", dtype_name(out_part.dtype()));
}

}  // namespace

void merge_by_lse(Tensor& out_acc, Tensor& lse_acc, const Tensor& out_part, const Tensor& lse_part) {
  if (out_acc.dtype() == DType::F64)
    merge_typed<double>(out_acc, lse_acc, out_part, lse_part);
  else
    merge_typed<float>(out_acc, lse_acc, out_part, lse_part);
}

}  // namespace sparrow::attn::cpu
