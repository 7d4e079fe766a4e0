// RoPE on the GPU (math in ops/cpu/rope.cpp). One thread per (position n, pair i): it forms
// θ = (offset + n)·base^(−2i/D) and its sine/cosine in f64 once (θ reaches 10⁶ rad on long
// sequences, beyond f32's phase accuracy), then rotates that pair in a slice of the B·H heads
// (grid.y splits the heads when N·D/2 alone is too few threads). Neighbouring threads touch
// neighbouring pairs of one row: coalesced.
#include "framework/cuda/runtime.h"
#include "framework/ops/cuda/rope.h"
#include "framework/ops/cuda/strided.cuh"

namespace sparrow::cuda {

namespace {

template <class T>
__global__ void rope_kernel(const T* __restrict__ in, T* __restrict__ out, int64_t BH, int64_t N, int64_t D,
                            int64_t position_offset, double base, bool inverse) {
  using A = typename Acc<T>::type;
  const int64_t P = D / 2, pairs = N * P;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < pairs; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = t / P, i = t % P;
    const double theta = static_cast<double>(position_offset + n) * pow(base, -2.0 * double(i) / double(D));
    double sd, cd;
    sincos(theta, &sd, &cd);
    const A c = static_cast<A>(cd), s = static_cast<A>(inverse ? -sd : sd);
    for (int64_t bh = blockIdx.y; bh < BH; bh += gridDim.y) {
      const int64_t at = (bh * N + n) * D + 2 * i;
      const A x0 = to_f(in[at]), x1 = to_f(in[at + 1]);
      out[at] = from_f<T>(c * x0 - s * x1);
      out[at + 1] = from_f<T>(s * x0 + c * x1);
    }
  }
}

}  // namespace

void rope_apply(const Tensor& in, Tensor& out, int64_t position_offset, double base, bool inverse) {
  if (in.numel() == 0) return;
  const int64_t BH = in.size(0) * in.size(1), N = in.size(2), D = in.size(3), pairs = N * (D / 2);
  // Aim for ~128K threads in all; split the heads over grid.y only as far as needed.
  int64_t ysplit = (131072 + pairs - 1) / pairs;
  ysplit = ysplit < 1 ? 1 : (ysplit > BH ? BH : ysplit);
  if (ysplit > 65535) ysplit = 65535;
  const dim3 grid(grid_for(pairs), static_cast<unsigned>(ysplit));
  SPARROW_CUDA_FLOAT_DISPATCH(in.dtype(), "rope", [&] {
    rope_kernel<T><<<grid, 256, 0, stream()>>>(static_cast<const T*>(in.data_ptr()), static_cast<T*>(out.data_ptr()),
                                               BH, N, D, position_offset, base, inverse);
    SPARROW_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace sparrow::cuda
