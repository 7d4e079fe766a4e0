// merge_by_lse: checks and the device dispatch (kernels/cpu/lse_merge.cpp, kernels/cuda/lse_merge.cu).
#include "attention/kernels/lse_merge.h"

#include "framework/core/dispatch.h"

namespace sparrow::attn {

void merge_by_lse(Tensor& out_acc, Tensor& lse_acc, const Tensor& out_part, const Tensor& lse_part) {
  const char* op = "merge_by_lse";
  SPARROW_CHECK(out_acc.dtype() == DType::F32 || out_acc.dtype() == DType::F64, op, ": accumulator ", describe(out_acc),
                " must be f32 or f64");
  check_same_dtype(op, out_acc, lse_acc);
  check_same_dtype(op, lse_acc, lse_part);
  check_float(op, out_part);
  check_same_device(op, out_acc, out_part);
  check_same_device(op, lse_acc, lse_part);
  check_same_device(op, out_acc, lse_acc);
  SPARROW_CHECK(out_acc.shape() == out_part.shape() && lse_acc.shape() == lse_part.shape() &&
                    out_acc.dim() == lse_acc.dim() + 1 && lse_acc.numel() * out_acc.size(-1) == out_acc.numel(),
                op, ": O ", shape_str(out_acc.shape()), " / ", shape_str(out_part.shape()), " and LSE ",
                shape_str(lse_acc.shape()), " / ", shape_str(lse_part.shape()), " do not match");
  for (const Tensor* t :
       {static_cast<const Tensor*>(&out_acc), static_cast<const Tensor*>(&lse_acc), &out_part, &lse_part})
    SPARROW_CHECK(t->is_contiguous(), op, ": ", describe(*t), " is not contiguous");
  SPARROW_DISPATCH(out_acc.device(), merge_by_lse, out_acc, lse_acc, out_part, lse_part);
}

}  // namespace sparrow::attn
