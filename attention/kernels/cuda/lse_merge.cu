// CUDA merge_by_lse (see kernels/lse_merge.h): one thread per (row, element), the row's weights
// recomputed by each (two exps; the pass is bound by memory, not arithmetic).
#include <cuda_bf16.h>

#include "attention/kernels/lse_merge.h"
#include "framework/cuda/runtime.h"

namespace sparrow::attn::cuda {

namespace {

__device__ inline float to_acc(float x, float) { return x; }
__device__ inline float to_acc(__nv_bfloat16 x, float) { return __bfloat162float(x); }
__device__ inline double to_acc(__nv_bfloat16 x, double) { return static_cast<double>(__bfloat162float(x)); }
__device__ inline double to_acc(float x, double) { return x; }

// Every thread of a row reads the row's old LSE from lse_in, a snapshot the caller takes, so the
// new LSE (written to lse_out by the row's element 0) never races with those reads.
template <class Acc, class Part>
__global__ void merge_kernel(Acc* out, const Acc* lse_in, Acc* lse_out, const Part* part, const Acc* lse_part,
                             int64_t rows, int64_t D) {
  const int64_t n = rows * D;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / D;
    const Acc a = lse_in[r], b = lse_part[r];
    if (isinf(b) && b < 0) continue;
    const Acc m = a > b ? a : b;
    const Acc wa = exp(a - m), wb = exp(b - m), s = wa + wb;
    out[i] = (wa * out[i] + wb * to_acc(part[i], Acc(0))) / s;
    if (i % D == 0) lse_out[r] = m + log(s);
  }
}

template <class Acc, class Part>
void launch(Tensor& out_acc, Tensor& lse_acc, const Tensor& out_part, const Tensor& lse_part) {
  const int64_t rows = lse_acc.numel(), D = out_acc.size(-1);
  const Tensor lse_before = lse_acc.clone();
  merge_kernel<Acc, Part><<<sparrow::cuda::grid_for(rows * D), 256, 0, sparrow::cuda::stream()>>>(
      out_acc.data<Acc>(), lse_before.data<Acc>(), lse_acc.data<Acc>(), static_cast<const Part*>(out_part.data_ptr()),
      lse_part.data<Acc>(), rows, D);
  SPARROW_CUDA_LAUNCH_CHECK();
}

template <class Acc>
void merge_typed(Tensor& out_acc, Tensor& lse_acc, const Tensor& out_part, const Tensor& lse_part) {
  switch (out_part.dtype()) {
    case DType::F32:
      return launch<Acc, float>(out_acc, lse_acc, out_part, lse_part);
    case DType::BF16:
      return launch<Acc, __nv_bfloat16>(out_acc, lse_acc, out_part, lse_part);
    default:
      break;
  }
  fail("merge_by_lse: part dtype ", dtype_name(out_part.dtype()), " on the GPU (f32 or bf16)");
}

}  // namespace

void merge_by_lse(Tensor& out_acc, Tensor& lse_acc, const Tensor& out_part, const Tensor& lse_part) {
  if (out_acc.dtype() == DType::F64)
    merge_typed<double>(out_acc, lse_acc, out_part, lse_part);
  else
    merge_typed<float>(out_acc, lse_acc, out_part, lse_part);
}

}  // namespace sparrow::attn::cuda
