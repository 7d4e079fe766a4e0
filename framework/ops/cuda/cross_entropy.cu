// Fused softmax cross-entropy on the GPU (math in ops/cpu/cross_entropy.cpp).
//   forward: one block per row streams the vocabulary once for the online (max, Σexp) pair →
//     lse; thread 0 forms the row's loss (cross_entropy_rows, a chunk of rows at a time for
//     linear_cross_entropy). A one-block kernel then sums the rows' losses in a fixed order
//     (deterministic), counts the targets into `count` (device memory, read by the backward) and
//     reports any bad target through cuda::check_on_host, once for all rows (cross_entropy_reduce).
//   backward: one block per row writes (exp(x − lse) − onehot)·dL/count, or zeros if ignored.
#include "framework/cuda/graph.h"
#include "framework/cuda/runtime.h"
#include "framework/ops/cuda/cross_entropy.h"
#include "framework/ops/cuda/fused_reduce.cuh"
#include "framework/ops/cuda/strided.cuh"

namespace sparrow::cuda {

namespace {

// A row's loss is 0 for an ignored target and for one outside [0, V) (ce_reduce_kernel reports that).
template <class T>
__global__ void ce_rows_kernel(const T* __restrict__ x, const int32_t* __restrict__ targets, int32_t ignore,
                               typename Acc<T>::type* lse, typename Acc<T>::type* row_loss, int64_t rows, int64_t V) {
  using A = typename Acc<T>::type;
  __shared__ MaxSum<A> scratch[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * V;
    MaxSum<A> ms{A(-INFINITY), A(0)};
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) ms = push(ms, static_cast<A>(to_f(xr[j])));
    ms = block_maxsum(ms, scratch);
    if (threadIdx.x == 0) {
      const A l = ms.m + log(ms.s);
      lse[row] = l;
      const int32_t t = targets[row];
      row_loss[row] = t != ignore && t >= 0 && t < V ? l - static_cast<A>(to_f(xr[t])) : A(0);
    }
  }
}

// info[0]: 1 if a bad target was seen, info[1]: one such target.
template <class A>
__global__ void ce_reduce_kernel(const A* row_loss, const int32_t* __restrict__ targets, int32_t ignore, int64_t V,
                                 A* loss, int32_t* count, int32_t* info, int64_t rows) {
  __shared__ double scratch[32];
  double s = 0, c = 0;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) {
    const int32_t t = targets[i];
    if (t == ignore) continue;
    if (t >= 0 && t < V) {
      s += static_cast<double>(row_loss[i]);
      c += 1;
    } else {
      info[1] = t;  // any one of the bad targets will do for the message
      info[0] = 1;
    }
  }
  s = block_sum(s, scratch);
  c = block_sum(c, scratch);
  if (threadIdx.x == 0) {
    loss[0] = static_cast<A>(c > 0 ? s / c : 0.0);
    count[0] = static_cast<int32_t>(c);
  }
}

template <class T>
__global__ void ce_backward_kernel(const T* __restrict__ x, const int32_t* __restrict__ targets, int32_t ignore,
                                   const typename Acc<T>::type* lse, const typename Acc<T>::type* g,
                                   const int32_t* count, T* __restrict__ dx, int64_t rows, int64_t V) {
  using A = typename Acc<T>::type;
  const int32_t c = count[0];
  const A scale = g[0] * static_cast<A>(c > 0 ? 1.0 / static_cast<double>(c) : 0.0);
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * V;
    T* dr = dx + row * V;
    const int32_t t = targets[row];
    if (t == ignore) {
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x) dr[j] = from_f<T>(0.0);
      continue;
    }
    const A l = lse[row];
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
      const A p = exp(static_cast<A>(to_f(xr[j])) - l);
      dr[j] = from_f<T>((j == t ? p - A(1) : p) * scale);
    }
  }
}

template <class T>
void rows_impl(const Tensor& logits, const Tensor& targets, int32_t ignore, Tensor& lse, Tensor& row_loss) {
  using A = typename Acc<T>::type;
  const int64_t N = logits.size(0), V = logits.size(1);
  ce_rows_kernel<T><<<row_blocks(N), row_threads(V), 0, stream()>>>(
      static_cast<const T*>(logits.data_ptr()), static_cast<const int32_t*>(targets.data_ptr()), ignore,
      static_cast<A*>(lse.data_ptr()), static_cast<A*>(row_loss.data_ptr()), N, V);
  SPARROW_CUDA_LAUNCH_CHECK();
}

template <class A>
void reduce_impl(const Tensor& row_loss, const Tensor& targets, int32_t ignore, int64_t V, Tensor& loss,
                 Tensor& count) {
  Tensor info = zeros({2}, DType::I32, row_loss.device());
  int32_t* ip = static_cast<int32_t*>(info.data_ptr());
  ce_reduce_kernel<A><<<1, 1024, 0, stream()>>>(
      static_cast<const A*>(row_loss.data_ptr()), static_cast<const int32_t*>(targets.data_ptr()), ignore, V,
      static_cast<A*>(loss.data_ptr()), count.data<int32_t>(), ip, row_loss.size(0));
  SPARROW_CUDA_LAUNCH_CHECK();
  check_on_host(ip, 2, [V, ignore](const int32_t* r) {
    if (!r[0]) return std::string();
    return "cross_entropy: target " + std::to_string(r[1]) + " is outside [0, " + std::to_string(V) +
           ") and is not ignore_index (" + std::to_string(ignore) + ")";
  });
}

template <class T>
void backward_impl(const Tensor& logits, const Tensor& targets, int32_t ignore, const Tensor& lse, const Tensor& g,
                   const Tensor& count, Tensor& dx) {
  using A = typename Acc<T>::type;
  const int64_t N = logits.size(0), V = logits.size(1);
  ce_backward_kernel<T><<<row_blocks(N), row_threads(V), 0, stream()>>>(
      static_cast<const T*>(logits.data_ptr()), static_cast<const int32_t*>(targets.data_ptr()), ignore,
      static_cast<const A*>(lse.data_ptr()), static_cast<const A*>(g.data_ptr()), count.data<int32_t>(),
      static_cast<T*>(dx.data_ptr()), N, V);
  SPARROW_CUDA_LAUNCH_CHECK();
}

}  // namespace

void cross_entropy_rows(const Tensor& logits, const Tensor& targets, int32_t ignore_index, Tensor& lse,
                        Tensor& row_loss) {
  SPARROW_CUDA_FLOAT_DISPATCH(logits.dtype(), "cross_entropy",
                              [&] { rows_impl<T>(logits, targets, ignore_index, lse, row_loss); });
}

void cross_entropy_reduce(const Tensor& row_loss, const Tensor& targets, int32_t ignore_index, int64_t V, Tensor& loss,
                          Tensor& count) {
  if (row_loss.dtype() == DType::F64)
    reduce_impl<double>(row_loss, targets, ignore_index, V, loss, count);
  else
    reduce_impl<float>(row_loss, targets, ignore_index, V, loss, count);
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int32_t ignore_index, const Tensor& lse,
                            const Tensor& g, const Tensor& count, Tensor& dlogits) {
  SPARROW_CUDA_FLOAT_DISPATCH(logits.dtype(), "cross_entropy backward",
                              [&] { backward_impl<T>(logits, targets, ignore_index, lse, g, count, dlogits); });
}

}  // namespace sparrow::cuda
