// Softmax / log_softmax on the GPU (math in ops/cpu/softmax.cpp).
//   last dim (inner == 1): one block per row; one pass for the online (max, Σexp) pair, one to
//     write. The backward: one block-sum (Σ dy∘y, or Σ dy for log_softmax), one pass to write.
//   other dims: the dim is walked with stride `inner`; one thread per line, so the threads of a
//     warp read neighbouring columns (coalesced), each looping over the D elements of its line.
#include "framework/cuda/runtime.h"
#include "framework/ops/cuda/fused_reduce.cuh"
#include "framework/ops/cuda/softmax.h"
#include "framework/ops/cuda/strided.cuh"

namespace sparrow::cuda {

namespace {

template <class T, bool kLog>
__global__ void softmax_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t D) {
  using A = typename Acc<T>::type;
  __shared__ MaxSum<A> scratch[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * D;
    T* yr = y + row * D;
    MaxSum<A> ms{A(-INFINITY), A(0)};
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) ms = push(ms, static_cast<A>(to_f(xr[j])));
    ms = block_maxsum(ms, scratch);
    if (kLog) {
      const A lse = ms.m + log(ms.s);
      for (int64_t j = threadIdx.x; j < D; j += blockDim.x) yr[j] = from_f<T>(to_f(xr[j]) - lse);
    } else {
      const A inv = A(1) / ms.s;
      for (int64_t j = threadIdx.x; j < D; j += blockDim.x) yr[j] = from_f<T>(exp(to_f(xr[j]) - ms.m) * inv);
    }
  }
}

template <class T, bool kLog>
__global__ void softmax_rows_backward_kernel(const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx,
                                             int64_t rows, int64_t D) {
  using A = typename Acc<T>::type;
  __shared__ A scratch[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* gr = dy + row * D;
    const T* yr = y + row * D;
    T* dr = dx + row * D;
    A s = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) s += kLog ? to_f(gr[j]) : to_f(gr[j]) * to_f(yr[j]);
    s = block_sum(s, scratch);
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      const A g = to_f(gr[j]), yy = to_f(yr[j]);
      dr[j] = from_f<T>(kLog ? g - exp(yy) * s : yy * (g - s));
    }
  }
}

template <class T, bool kLog>
__global__ void softmax_lines_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t lines, int64_t D,
                                     int64_t inner) {
  using A = typename Acc<T>::type;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < lines; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = (k / inner) * D * inner + (k % inner);
    MaxSum<A> ms{A(-INFINITY), A(0)};
    for (int64_t j = 0; j < D; ++j) ms = push(ms, static_cast<A>(to_f(x[base + j * inner])));
    const A lse = ms.m + log(ms.s), inv = A(1) / ms.s;
    for (int64_t j = 0; j < D; ++j) {
      const A v = to_f(x[base + j * inner]);
      y[base + j * inner] = from_f<T>(kLog ? v - lse : exp(v - ms.m) * inv);
    }
  }
}

template <class T, bool kLog>
__global__ void softmax_lines_backward_kernel(const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx,
                                              int64_t lines, int64_t D, int64_t inner) {
  using A = typename Acc<T>::type;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < lines; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = (k / inner) * D * inner + (k % inner);
    A s = 0;
    for (int64_t j = 0; j < D; ++j) {
      const int64_t i = base + j * inner;
      s += kLog ? to_f(dy[i]) : to_f(dy[i]) * to_f(y[i]);
    }
    for (int64_t j = 0; j < D; ++j) {
      const int64_t i = base + j * inner;
      const A g = to_f(dy[i]), yy = to_f(y[i]);
      dx[i] = from_f<T>(kLog ? g - exp(yy) * s : yy * (g - s));
    }
  }
}

struct Lines {
  int64_t outer, D, inner;
};

Lines split_at(const Shape& s, int64_t dim) {
  Lines l{1, s[dim], 1};
  for (int64_t i = 0; i < dim; ++i) l.outer *= s[i];
  for (size_t i = dim + 1; i < s.size(); ++i) l.inner *= s[i];
  return l;
}

template <class T, bool kLog>
void forward_impl(const Tensor& x, int64_t dim, Tensor& y) {
  const Lines l = split_at(x.shape(), dim);
  const T* xp = static_cast<const T*>(x.data_ptr());
  T* yp = static_cast<T*>(y.data_ptr());
  if (l.inner == 1) {
    softmax_rows_kernel<T, kLog><<<row_blocks(l.outer), row_threads(l.D), 0, stream()>>>(xp, yp, l.outer, l.D);
  } else {
    const int64_t lines = l.outer * l.inner;
    softmax_lines_kernel<T, kLog><<<grid_for(lines), 256, 0, stream()>>>(xp, yp, lines, l.D, l.inner);
  }
  SPARROW_CUDA_LAUNCH_CHECK();
}

template <class T, bool kLog>
void backward_impl(const Tensor& dy, const Tensor& y, int64_t dim, Tensor& dx) {
  const Lines l = split_at(y.shape(), dim);
  const T* gp = static_cast<const T*>(dy.data_ptr());
  const T* yp = static_cast<const T*>(y.data_ptr());
  T* dp = static_cast<T*>(dx.data_ptr());
  if (l.inner == 1) {
    softmax_rows_backward_kernel<T, kLog>
        <<<row_blocks(l.outer), row_threads(l.D), 0, stream()>>>(gp, yp, dp, l.outer, l.D);
  } else {
    const int64_t lines = l.outer * l.inner;
    softmax_lines_backward_kernel<T, kLog><<<grid_for(lines), 256, 0, stream()>>>(gp, yp, dp, lines, l.D, l.inner);
  }
  SPARROW_CUDA_LAUNCH_CHECK();
}

}  // namespace

void softmax_forward(bool log, const Tensor& x, int64_t dim, Tensor& y) {
  if (x.numel() == 0) return;
  SPARROW_CUDA_FLOAT_DISPATCH(x.dtype(), log ? "log_softmax" : "softmax", [&] {
    if (log)
      forward_impl<T, true>(x, dim, y);
    else
      forward_impl<T, false>(x, dim, y);
  });
}

void softmax_backward(bool log, const Tensor& dy, const Tensor& y, int64_t dim, Tensor& dx) {
  if (y.numel() == 0) return;
  SPARROW_CUDA_FLOAT_DISPATCH(y.dtype(), log ? "log_softmax backward" : "softmax backward", [&] {
    if (log)
      backward_impl<T, true>(dy, y, dim, dx);
    else
      backward_impl<T, false>(dy, y, dim, dx);
  });
}

}  // namespace sparrow::cuda
