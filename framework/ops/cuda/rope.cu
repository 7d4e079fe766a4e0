// RoPE on the GPU (math in ops/cpu/rope.cpp). One thread per (position n, pair i): it forms
// θ = (offset + n)·base^(−2i/D) and its sine/cosine in f64 once (θ reaches 10⁶ rad on long
// sequences, beyond f32's phase accuracy), then rotates that pair in a slice of the B·H heads
// (grid.y splits the heads when N·D/2 alone is too few threads). Neighbouring threads touch
// neighbouring pairs of one row: coalesced.
#include "framework/cuda/runtime.h"
#include "framework/ops/cuda/map.cuh"
#include "framework/ops/cuda/rope.h"

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

// rope_heads: one thread per (b, t, vector of V lanes along D), looping over the 3·H segments of
// that row. Its V/2 angles are formed once (f64 sincos) and reused by all 2·H rotated segments;
// reads of qkv and writes of heads are 16-byte vectors, neighbouring threads on neighbouring
// vectors of one D-row (and, in the heads layout, of consecutive positions t).
template <class T, int V>
__global__ void rope_heads_kernel(const T* __restrict__ in, T* __restrict__ out, int64_t B, int64_t Tn, int64_t H,
                                  int64_t D, int64_t position_offset, double base, bool to_heads) {
  using A = typename Acc<T>::type;
  const int64_t VD = D / V, n = B * Tn * VD;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t vd = k % VD, row = k / VD, t = row % Tn, b = row / Tn;
    A c[V / 2], s[V / 2];
#pragma unroll
    for (int p = 0; p < V / 2; ++p) {
      const int64_t i = vd * (V / 2) + p;
      const double theta = static_cast<double>(position_offset + t) * pow(base, -2.0 * double(i) / double(D));
      double sd, cd;
      sincos(theta, &sd, &cd);
      c[p] = static_cast<A>(cd);
      s[p] = static_cast<A>(to_heads ? sd : -sd);
    }
    for (int64_t part = 0; part < 3; ++part)
#pragma unroll 4
      for (int64_t h = 0; h < H; ++h) {  // unrolled: several independent 16-byte loads in flight
        const int64_t packed = ((row * 3 + part) * H + h) * D + vd * V;          // [B, T, 3, H, D]
        const int64_t split = (((part * B + b) * H + h) * Tn + t) * D + vd * V;  // [3, B, H, T, D]
        const Lanes<T, V> x = load_lanes<T, V>(in + (to_heads ? packed : split), false);
        Lanes<T, V> y;
        if (part == 2) {
          y = x;
        } else {
#pragma unroll
          for (int p = 0; p < V / 2; ++p) {
            const A x0 = to_f(x.v[2 * p]), x1 = to_f(x.v[2 * p + 1]);
            y.v[2 * p] = store<T>(c[p] * x0 - s[p] * x1);
            y.v[2 * p + 1] = store<T>(s[p] * x0 + c[p] * x1);
          }
        }
        store_lanes<T, V>(out + (to_heads ? split : packed), y);
      }
  }
}

}  // namespace

void rope_heads(const Tensor& in, Tensor& out, int64_t heads, int64_t position_offset, double base, bool to_heads) {
  if (in.numel() == 0) return;
  const Shape& qs = to_heads ? in.shape() : out.shape();  // [B, T, 3·H·D]
  const int64_t B = qs[0], Tn = qs[1], D = qs[2] / (3 * heads);
  SPARROW_CUDA_FLOAT_DISPATCH(in.dtype(), "rope_heads", [&] {
    // 16-byte vectors where D allows (it does for every even D ≥ 8 with bf16 or f32 at 16·k).
    constexpr int V = 16 / sizeof(T) >= 2 ? 16 / sizeof(T) : 2;
    const bool wide = D % V == 0 && reinterpret_cast<uintptr_t>(in.data_ptr()) % 16 == 0 &&
                      reinterpret_cast<uintptr_t>(out.data_ptr()) % 16 == 0;
    const int64_t threads = B * Tn * (D / (wide ? V : 2));
    if (wide)
      rope_heads_kernel<T, V><<<grid_for(threads), 256, 0, stream()>>>(static_cast<const T*>(in.data_ptr()),
                                                                       static_cast<T*>(out.data_ptr()), B, Tn, heads, D,
                                                                       position_offset, base, to_heads);
    else
      rope_heads_kernel<T, 2><<<grid_for(threads), 256, 0, stream()>>>(static_cast<const T*>(in.data_ptr()),
                                                                       static_cast<T*>(out.data_ptr()), B, Tn, heads, D,
                                                                       position_offset, base, to_heads);
    SPARROW_CUDA_LAUNCH_CHECK();
  });
}

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
