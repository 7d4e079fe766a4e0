// The plain (CUDA-core) block-attention kernels: one thread per query row (forward, dQ) or per
// key row (dK/dV), one key (query) at a time with an exact online softmax in the compute type
// (f32 for f32/bf16 storage, f64 for f64). They run every dtype, every head dim ≤ 256 and every
// layout block size; the tensor-core kernels (block_attention_mma.cuh) take the common bf16
// cases. Threads of a CTA visit the same keys in step, so K/V reads are warp broadcasts.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "attention/kernels/cuda/block_attention_walk.cuh"

namespace sparrow::attn::cuda {

constexpr int kSimpleMaxD = 256;
constexpr int kSimpleThreads = 64;

template <class T>
struct SimpleAcc {
  using type = float;
};
template <>
struct SimpleAcc<double> {
  using type = double;
};

template <class T>
__device__ __forceinline__ typename SimpleAcc<T>::type ld(const T* p) {
  return static_cast<typename SimpleAcc<T>::type>(*p);
}
template <>
__device__ __forceinline__ float ld<__nv_bfloat16>(const __nv_bfloat16* p) {
  return __bfloat162float(*p);
}
template <class T, class A>
__device__ __forceinline__ T st(A x) {
  return static_cast<T>(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 st<__nv_bfloat16, float>(float x) {
  return __float2bfloat16(x);
}

template <class A>
__device__ __forceinline__ A exp_a(A x);
template <>
__device__ __forceinline__ float exp_a<float>(float x) {
  return expf(x);
}
template <>
__device__ __forceinline__ double exp_a<double>(double x) {
  return exp(x);
}

// The key blocks of query row i (forward, dQ): calls f(j) for every key j it sees, in order.
template <class F>
__device__ __forceinline__ void for_each_visible_key(const LayoutView& L, const AttnGeometry& g, int h, int64_t i,
                                                     F&& f) {
  auto block_keys = [&](int64_t kb, int blk) {
    const int64_t j0 = kb * blk, j1 = min(j0 + blk, g.nk);
    for (int64_t j = j0; j < j1; ++j)
      if (!g.causal || key_end_pos(g, j) <= i) f(j);
  };
  if (L.row_ptr == nullptr) {
    const int64_t nkb = (g.nk + L.block - 1) / L.block;
    for (int64_t kb = 0; kb < nkb; ++kb) {
      if (g.causal && g.key_last == nullptr && kb * L.block > i) break;
      block_keys(kb, L.block);
    }
  } else {
    const int lh = L.nh == 1 ? 0 : h;
    const int64_t* rp = L.row_ptr + lh * (L.nqb + 1);
    const int64_t qb = i / L.block;
    for (int64_t p = rp[qb]; p < rp[qb + 1]; ++p) block_keys(L.col_idx[p], L.block);
  }
}

// The query rows that see key j (dK/dV): calls f(i) for each.
template <class F>
__device__ __forceinline__ void for_each_seeing_query(const LayoutView& L, const AttnGeometry& g, int h, int64_t j,
                                                      F&& f) {
  const int64_t kl = key_end_pos(g, j);
  auto block_queries = [&](int64_t qb, int blk) {
    const int64_t i0 = qb * blk, i1 = min(i0 + blk, g.nq);
    for (int64_t i = i0; i < i1; ++i)
      if (!g.causal || kl <= i) f(i);
  };
  if (L.row_ptr == nullptr) {
    const int64_t nqb = (g.nq + L.block - 1) / L.block;
    for (int64_t qb = 0; qb < nqb; ++qb) block_queries(qb, L.block);
  } else {
    const int lh = L.nh == 1 ? 0 : h;
    const int64_t* cp = L.col_ptr + lh * (L.nkb + 1);
    const int64_t kb = j / L.block;
    for (int64_t p = cp[kb]; p < cp[kb + 1]; ++p) block_queries(L.row_idx[p], L.block);
  }
}

// Forward: out, lse (the compute type). Grid (ceil(nq / 64), B·H), 64 threads.
template <class T>
__global__ void attn_fwd_simple(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                T* __restrict__ out, typename SimpleAcc<T>::type* __restrict__ lse, LayoutView L,
                                AttnGeometry g) {
  using A = typename SimpleAcc<T>::type;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int bh = blockIdx.y, h = bh % g.heads, D = g.d;
  if (i >= g.nq) return;
  const T* qi = q + (static_cast<int64_t>(bh) * g.nq + i) * D;
  const T* kb = k + static_cast<int64_t>(bh) * g.nk * D;
  const T* vb = v + static_cast<int64_t>(bh) * g.nk * D;
  A qr[kSimpleMaxD], acc[kSimpleMaxD];
  for (int d = 0; d < D; ++d) {
    qr[d] = ld(qi + d) * static_cast<A>(g.scale_f64);
    acc[d] = 0;
  }
  A m = -INFINITY, l = 0;
  for_each_visible_key(L, g, h, i, [&](int64_t j) {
    const T* kj = kb + j * D;
    A s = 0;
    for (int d = 0; d < D; ++d) s += qr[d] * ld(kj + d);
    const A m_new = s > m ? s : m;
    const A c = exp_a(m - m_new), p = exp_a(s - m_new);
    l = l * c + p;
    const T* vj = vb + j * D;
    for (int d = 0; d < D; ++d) acc[d] = acc[d] * c + p * ld(vj + d);
    m = m_new;
  });
  T* oi = out + (static_cast<int64_t>(bh) * g.nq + i) * D;
  const A inv = l > 0 ? A(1) / l : A(0);
  for (int d = 0; d < D; ++d) oi[d] = st<T>(acc[d] * inv);
  lse[static_cast<int64_t>(bh) * g.nq + i] = l > 0 ? m + log(l) : -INFINITY;
}

// Di = rowsum(dO ∘ O) in the compute type, one thread per row.
template <class T>
__global__ void attn_di_simple(const T* __restrict__ o, const T* __restrict__ dout,
                               typename SimpleAcc<T>::type* __restrict__ di, int64_t rows, int d) {
  using A = typename SimpleAcc<T>::type;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < rows;
       r += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    A s = 0;
    for (int c = 0; c < d; ++c) s += ld(o + r * d + c) * ld(dout + r * d + c);
    di[r] = s;
  }
}

// dQ: one thread per query row.
template <class T>
__global__ void attn_dq_simple(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                               const T* __restrict__ dout, const typename SimpleAcc<T>::type* __restrict__ lse,
                               const typename SimpleAcc<T>::type* __restrict__ di, T* __restrict__ dq, LayoutView L,
                               AttnGeometry g) {
  using A = typename SimpleAcc<T>::type;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int bh = blockIdx.y, h = bh % g.heads, D = g.d;
  if (i >= g.nq) return;
  const int64_t row = static_cast<int64_t>(bh) * g.nq + i;
  const T* kb = k + static_cast<int64_t>(bh) * g.nk * D;
  const T* vb = v + static_cast<int64_t>(bh) * g.nk * D;
  A qr[kSimpleMaxD], gr[kSimpleMaxD], acc[kSimpleMaxD];
  for (int d = 0; d < D; ++d) {
    qr[d] = ld(q + row * D + d) * static_cast<A>(g.scale_f64);
    gr[d] = ld(dout + row * D + d);
    acc[d] = 0;
  }
  const A lse_i = lse[row], di_i = di[row];
  if (lse_i != -INFINITY) {
    for_each_visible_key(L, g, h, i, [&](int64_t j) {
      const T* kj = kb + j * D;
      const T* vj = vb + j * D;
      A s = 0, dp = 0;
      for (int d = 0; d < D; ++d) {
        s += qr[d] * ld(kj + d);
        dp += gr[d] * ld(vj + d);
      }
      const A ds = exp_a(s - lse_i) * (dp - di_i);
      for (int d = 0; d < D; ++d) acc[d] += ds * ld(kj + d);
    });
  }
  for (int d = 0; d < D; ++d) dq[row * D + d] = st<T>(acc[d] * static_cast<A>(g.scale_f64));
}

// dK, dV: one thread per key row.
template <class T>
__global__ void attn_dkdv_simple(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                 const T* __restrict__ dout, const typename SimpleAcc<T>::type* __restrict__ lse,
                                 const typename SimpleAcc<T>::type* __restrict__ di, T* __restrict__ dk,
                                 T* __restrict__ dv, LayoutView L, AttnGeometry g) {
  using A = typename SimpleAcc<T>::type;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int bh = blockIdx.y, h = bh % g.heads, D = g.d;
  if (j >= g.nk) return;
  const int64_t krow = static_cast<int64_t>(bh) * g.nk + j;
  const int64_t qbase = static_cast<int64_t>(bh) * g.nq;
  A kr[kSimpleMaxD], vr[kSimpleMaxD], dka[kSimpleMaxD], dva[kSimpleMaxD];
  for (int d = 0; d < D; ++d) {
    kr[d] = ld(k + krow * D + d) * static_cast<A>(g.scale_f64);
    vr[d] = ld(v + krow * D + d);
    dka[d] = dva[d] = 0;
  }
  for_each_seeing_query(L, g, h, j, [&](int64_t i) {
    const A lse_i = lse[qbase + i];
    if (lse_i == -INFINITY) return;
    const T* qi = q + (qbase + i) * D;
    const T* gi = dout + (qbase + i) * D;
    A s = 0, dp = 0;
    for (int d = 0; d < D; ++d) {
      s += kr[d] * ld(qi + d);
      dp += vr[d] * ld(gi + d);
    }
    const A p = exp_a(s - lse_i);
    const A ds = p * (dp - di[qbase + i]);
    for (int d = 0; d < D; ++d) {
      dva[d] += p * ld(gi + d);
      dka[d] += ds * ld(qi + d);
    }
  });
  for (int d = 0; d < D; ++d) {
    dk[krow * D + d] = st<T>(dka[d] * static_cast<A>(g.scale_f64));
    dv[krow * D + d] = st<T>(dva[d]);
  }
}

}  // namespace sparrow::attn::cuda
