// Layer/RMS normalisation on the GPU (math in ops/cpu/norm.cpp):
//   forward:  one block per row; μ, then σ² = Σ(x−μ)²/D (two passes over the row, which the
//             block re-reads from L1/L2), r = 1/√(σ²+ε), y = (x−μ)·r·w (+ b).
//   backward: one block per row for dx = r·(g − mean(g) − x̂·mean(g·x̂)), g = dy·w;
//             dw = Σ dy·x̂ and db = Σ dy by columns: each block sums a chunk of rows for 256
//             columns (coalesced), then a second kernel folds the chunks in a fixed order.
#include "framework/cuda/runtime.h"
#include "framework/ops/cuda/fused_reduce.cuh"
#include "framework/ops/cuda/norm.h"
#include "framework/ops/cuda/strided.cuh"

namespace sparrow::cuda {

namespace {

template <class T, bool kCentered>
__global__ void norm_forward_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                    double eps, T* __restrict__ y, typename Acc<T>::type* mean,
                                    typename Acc<T>::type* rstd, int64_t rows, int64_t D) {
  using A = typename Acc<T>::type;
  __shared__ A scratch[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * D;
    T* yr = y + row * D;
    A mu = 0;
    if (kCentered) {
      A s = 0;
      for (int64_t j = threadIdx.x; j < D; j += blockDim.x) s += to_f(xr[j]);
      mu = block_sum(s, scratch) / static_cast<A>(D);
    }
    A v = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      const A d = to_f(xr[j]) - mu;
      v += d * d;
    }
    const A var = block_sum(v, scratch) / static_cast<A>(D);
    const A rs = A(1) / sqrt(var + static_cast<A>(eps));
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      A o = (to_f(xr[j]) - mu) * rs * to_f(w[j]);
      if (b) o += to_f(b[j]);
      yr[j] = from_f<T>(o);
    }
    if (threadIdx.x == 0) {
      if (kCentered) mean[row] = mu;
      rstd[row] = rs;
    }
  }
}

template <class T, bool kCentered>
__global__ void norm_backward_dx_kernel(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ w,
                                        const typename Acc<T>::type* mean, const typename Acc<T>::type* rstd,
                                        T* __restrict__ dx, int64_t rows, int64_t D) {
  using A = typename Acc<T>::type;
  __shared__ A scratch[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * D;
    const T* gr = dy + row * D;
    const A mu = kCentered ? mean[row] : A(0), rs = rstd[row];
    A sg = 0, sgx = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      const A g = to_f(gr[j]) * to_f(w[j]);
      sg += g;
      sgx += g * (to_f(xr[j]) - mu) * rs;
    }
    const A mean_g = kCentered ? block_sum(sg, scratch) / static_cast<A>(D) : A(0);
    const A mean_gx = block_sum(sgx, scratch) / static_cast<A>(D);
    T* dr = dx + row * D;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      const A g = to_f(gr[j]) * to_f(w[j]);
      const A xh = (to_f(xr[j]) - mu) * rs;
      dr[j] = from_f<T>(rs * (g - mean_g - xh * mean_gx));
    }
  }
}

// Partial column sums over rows [chunk·rows_per_chunk, …): pw[chunk, col] = Σ dy·x̂, pb = Σ dy.
template <class T, bool kCentered>
__global__ void norm_param_partial_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                          const typename Acc<T>::type* mean, const typename Acc<T>::type* rstd,
                                          typename Acc<T>::type* pw, typename Acc<T>::type* pb, int64_t rows,
                                          int64_t D, int64_t rows_per_chunk) {
  using A = typename Acc<T>::type;
  const int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (col >= D) return;
  const int64_t r0 = blockIdx.y * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
  A sw = 0, sb = 0;
  for (int64_t r = r0; r < r1; ++r) {
    const A g = to_f(dy[r * D + col]);
    const A mu = kCentered ? mean[r] : A(0);
    sw += g * (to_f(x[r * D + col]) - mu) * rstd[r];
    sb += g;
  }
  if (pw) pw[blockIdx.y * D + col] = sw;
  if (pb) pb[blockIdx.y * D + col] = sb;
}

template <class T>
__global__ void fold_chunks_kernel(const typename Acc<T>::type* part, T* out, int64_t chunks, int64_t D) {
  using A = typename Acc<T>::type;
  const int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (col >= D) return;
  A s = 0;
  for (int64_t c = 0; c < chunks; ++c) s += part[c * D + col];
  out[col] = from_f<T>(s);
}

template <class T>
const T* ptr(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.data_ptr()) : nullptr;
}
template <class T>
T* mut(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.data_ptr()) : nullptr;
}

template <class T, bool kCentered>
void forward_impl(const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y, Tensor& mean,
                  Tensor& rstd) {
  using A = typename Acc<T>::type;
  const int64_t D = x.size(-1), rows = x.numel() / D;
  norm_forward_kernel<T, kCentered><<<row_blocks(rows), row_threads(D), 0, stream()>>>(
      ptr<T>(x), ptr<T>(w), ptr<T>(b), eps, mut<T>(y), mut<A>(mean), mut<A>(rstd), rows, D);
  SPARROW_CUDA_LAUNCH_CHECK();
}

template <class T, bool kCentered>
void backward_impl(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                   Tensor& dx, Tensor& dw, Tensor& db) {
  using A = typename Acc<T>::type;
  const int64_t D = x.size(-1), rows = x.numel() / D;
  if (dx.defined()) {
    norm_backward_dx_kernel<T, kCentered><<<row_blocks(rows), row_threads(D), 0, stream()>>>(
        ptr<T>(dy), ptr<T>(x), ptr<T>(w), ptr<A>(mean), ptr<A>(rstd), mut<T>(dx), rows, D);
    SPARROW_CUDA_LAUNCH_CHECK();
  }
  if (!dw.defined() && !db.defined()) return;
  // Enough chunks to fill the GPU, each at least 32 rows; the fold reads chunks·D partials.
  const int64_t rows_per_chunk = std::max<int64_t>(32, (rows + 511) / 512);
  const int64_t chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
  const DType sd = x.dtype() == DType::F64 ? DType::F64 : DType::F32;
  Tensor pw = dw.defined() ? empty({chunks, D}, sd, x.device()) : Tensor();
  Tensor pb = db.defined() ? empty({chunks, D}, sd, x.device()) : Tensor();
  const dim3 grid(static_cast<unsigned>((D + 255) / 256), static_cast<unsigned>(chunks));
  norm_param_partial_kernel<T, kCentered><<<grid, 256, 0, stream()>>>(
      ptr<T>(dy), ptr<T>(x), ptr<A>(mean), ptr<A>(rstd), mut<A>(pw), mut<A>(pb), rows, D, rows_per_chunk);
  SPARROW_CUDA_LAUNCH_CHECK();
  const unsigned fold_blocks = static_cast<unsigned>((D + 255) / 256);
  if (dw.defined()) {
    fold_chunks_kernel<T><<<fold_blocks, 256, 0, stream()>>>(ptr<A>(pw), mut<T>(dw), chunks, D);
    SPARROW_CUDA_LAUNCH_CHECK();
  }
  if (db.defined()) {
    fold_chunks_kernel<T><<<fold_blocks, 256, 0, stream()>>>(ptr<A>(pb), mut<T>(db), chunks, D);
    SPARROW_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace

void norm_forward(bool centered, const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, Tensor& y,
                  Tensor& mean, Tensor& rstd) {
  SPARROW_CUDA_FLOAT_DISPATCH(x.dtype(), centered ? "layer_norm" : "rms_norm", [&] {
    if (centered)
      forward_impl<T, true>(x, weight, bias, eps, y, mean, rstd);
    else
      forward_impl<T, false>(x, weight, bias, eps, y, mean, rstd);
  });
}

void norm_backward(bool centered, const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& mean,
                   const Tensor& rstd, Tensor& dx, Tensor& dweight, Tensor& dbias) {
  SPARROW_CUDA_FLOAT_DISPATCH(x.dtype(), centered ? "layer_norm backward" : "rms_norm backward", [&] {
    if (centered)
      backward_impl<T, true>(dy, x, weight, mean, rstd, dx, dweight, dbias);
    else
      backward_impl<T, false>(dy, x, weight, mean, rstd, dx, dweight, dbias);
  });
}

}  // namespace sparrow::cuda
