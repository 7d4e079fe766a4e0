// Tensor-core (mma.sync m16n8k16, bf16 → f32) block-attention kernels, FlashAttention-2 style.
//
// Every warp owns 16 rows of its CTA's tile; tiles are 64 keys (forward, dQ) or 64 queries
// (dK/dV) wide and stream through double-buffered shared memory by cp.async while the previous
// tile computes. Scores live in registers as C fragments and feed the next product as A
// fragments (mma_bf16.cuh), so S and P never touch shared memory.
//
//   forward   (CTA = 16·NW query rows × one batch·head): walk the layout row;
//             S = Q Kᵀ; online softmax in base 2 (scale·log2 e folded in); O += P V;
//             O = acc / l, LSE = (m + log2 l)·ln 2.
//   dQ        (CTA = 64 query rows): walk the layout row; S = Q Kᵀ, P = exp2(S − LSE₂),
//             dP = dO Vᵀ, dS = P ∘ (dP − Di), dQ += dS K; dQ ·= scale.
//   dK, dV    (CTA = 64 key rows): walk the layout's transpose; Sᵀ = K Qᵀ, Pᵀ, dV += Pᵀ dO,
//             dPᵀ = V dOᵀ, dSᵀ = Pᵀ ∘ (dPᵀ − Di), dK += dSᵀ Q; dK ·= scale.
// dQ is a separate pass (recomputing S and dP) rather than f32 atomics from the dK/dV pass:
// deterministic, no [B, H, N, D] f32 buffer (which would cost 2× dQ's memory at 1M+ tokens), at
// the price of two extra tile products per visited pair — the same split FlexAttention makes.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "attention/kernels/cuda/block_attention_walk.cuh"
#include "attention/kernels/cuda/exp2_ftz.cuh"
#include "attention/kernels/cuda/mma_bf16.cuh"

namespace sparrow::attn::cuda {

using bf16_t = __nv_bfloat16;
constexpr int kTile = 64;  // keys per tile (forward, dQ) and queries per tile (dK/dV)

// Shared memory of each kernel, in bytes (the host sets the dynamic limit from these).
template <int D, int NW>
constexpr int fwd_smem_bytes() {
  return (16 * NW + 4 * kTile) * (D + 8) * 2;
}
template <int D>
constexpr int dq_smem_bytes() {
  return (2 * kTile + 4 * kTile) * (D + 8) * 2;
}
template <int D>
constexpr int dkdv_smem_bytes() {
  return (2 * kTile + 4 * kTile) * (D + 8) * 2 + 4 * kTile * 4;
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// ---------------------------------------------------------------------------------------------
// Forward. Grid: (query tiles, B·H). Block: 32·NW threads.
// At least 16 warps per SM (2 CTAs of 8 warps, 4 of 4): the registers are held to 128 a thread.
// At 130 the SM held one 8-warp CTA, and the forward ran at 39% issue utilisation (Nsight
// Compute, 64K tokens, D 64).
template <int D, int NW>
__global__ void __launch_bounds__(32 * NW, 16 / NW)
    attn_fwd_mma(const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v,
                 bf16_t* __restrict__ out, float* __restrict__ lse, LayoutView L, AttnGeometry g) {
  constexpr int BM = 16 * NW, LD = D + 8, THREADS = 32 * NW;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16_t* sQ = reinterpret_cast<bf16_t*>(smem);
  bf16_t* sK = sQ + BM * LD;         // [2][kTile][LD]
  bf16_t* sV = sK + 2 * kTile * LD;  // [2][kTile][LD]

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  // Heavier (later, under causality) query tiles first: a better tail on a causal grid.
  const int64_t tile_idx = static_cast<int64_t>(gridDim.x) - 1 - blockIdx.x;
  const int64_t q0 = tile_idx * BM;
  const int bh = blockIdx.y, h = bh % g.heads;
  const bf16_t* qg = q + static_cast<int64_t>(bh) * g.nq * D;
  const bf16_t* kg = k + static_cast<int64_t>(bh) * g.nk * D;
  const bf16_t* vg = v + static_cast<int64_t>(bh) * g.nk * D;

  RowWalk walk;
  walk.init(L, g, h, q0, BM, kTile);
  int64_t k0 = 0;
  int64_t t = walk.next(0, &k0);

  load_tile_async<BM, D, THREADS>(sQ, qg, q0, g.nq, tid);
  if (t < walk.count) {
    load_tile_async<kTile, D, THREADS>(sK, kg, k0, g.nk, tid);
    load_tile_async<kTile, D, THREADS>(sV, vg, k0, g.nk, tid);
  }
  cp_async_commit();

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int64_t row_a = q0 + warp * 16 + (lane >> 2);  // this thread's rows: row_a, row_a + 8
  int buf = 0;

  while (t < walk.count) {
    cp_async_wait<0>();
    __syncthreads();
    int64_t k0_next = 0;
    const int64_t t_next = walk.next(t + 1, &k0_next);
    if (t_next < walk.count) {
      load_tile_async<kTile, D, THREADS>(sK + (buf ^ 1) * kTile * LD, kg, k0_next, g.nk, tid);
      load_tile_async<kTile, D, THREADS>(sV + (buf ^ 1) * kTile * LD, vg, k0_next, g.nk, tid);
    }
    cp_async_commit();
    const bf16_t* cK = sK + buf * kTile * LD;
    const bf16_t* cV = sV + buf * kTile * LD;

    // S = Q Kᵀ for this warp's 16 rows × 64 keys.
    float s[8][4];
#pragma unroll
    for (int i = 0; i < 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t a[4];
      load_a(a, sQ, LD, warp * 16, kk * 16, lane);
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t b[4];
        load_b_nk(b, cK, LD, np * 16, kk * 16, lane);
        mma_16816(s[2 * np], a, b[0], b[1]);
        mma_16816(s[2 * np + 1], a, b[2], b[3]);
      }
    }

    // Scale into base-2 logits; mask keys past the end and (per element) causally hidden keys.
    const bool need_mask =
        k0 + kTile > g.nk || (g.causal && (g.key_last != nullptr || k0 + kTile - 1 > q0 + warp * 16));
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[nt][e] * g.scale_log2;
        if (need_mask) {
          const int64_t j = k0 + nt * 8 + (lane & 3) * 2 + (e & 1);
          const int64_t i = row_a + (e >> 1) * 8;
          const bool ok = j < g.nk && (!g.causal || key_end_pos(g, j) <= i);
          if (!ok) x = -INFINITY;
        }
        s[nt][e] = x;
      }

      // Online softmax, two rows per thread (e = 0,1 → row_a; e = 2,3 → row_a + 8). exp2f, not
      // exp2_ftz as the backward kernels: at this kernel's 128-register cap the fewer instructions
      // cost spills (sm_80 SASS: 8 local accesses in the loop at D 64 with exp2f, 25 with
      // exp2_ftz; bench/HOPPER_NOTES.md, session 21).
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
      mx = quad_max(mx);
      const float m_new = fmaxf(m[r], mx);
      const float m_use = m_new == -INFINITY ? 0.f : m_new;  // a row with nothing visible yet
      const float alpha = exp2f(m[r] - m_use);
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        s[nt][2 * r] = exp2f(s[nt][2 * r] - m_use);
        s[nt][2 * r + 1] = exp2f(s[nt][2 * r + 1] - m_use);
        sum += s[nt][2 * r] + s[nt][2 * r + 1];
      }
      l[r] = l[r] * alpha + sum;  // per-thread partial; the quad's partials are summed at the end
      m[r] = m_new;
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        o[dt][2 * r] *= alpha;
        o[dt][2 * r + 1] *= alpha;
      }
    }

    // O += P V.
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t a[4];
      c_to_a(a, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t b[4];
        load_b_kn(b, cV, LD, kk * 16, dp * 16, lane);
        mma_16816(o[2 * dp], a, b[0], b[1]);
        mma_16816(o[2 * dp + 1], a, b[2], b[3]);
      }
    }
    t = t_next;
    k0 = k0_next;
    buf ^= 1;
  }
  cp_async_wait<0>();
  __syncthreads();

  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float lsum = quad_sum(l[r]);
    inv[r] = lsum > 0.f ? 1.f / lsum : 0.f;  // a row that sees nothing: O = 0
    const int64_t i = row_a + r * 8;
    if ((lane & 3) == 0 && i < g.nq)
      lse[static_cast<int64_t>(bh) * g.nq + i] = lsum > 0.f ? (m[r] + log2f(lsum)) * 0.69314718055994531f : -INFINITY;
  }
  store_rows_bf16<D>(o, inv[0], inv[1], sQ + warp * 16 * LD, out + static_cast<int64_t>(bh) * g.nq * D, q0 + warp * 16,
                     g.nq, lane);
}

// ---------------------------------------------------------------------------------------------
// Backward preprocessing: Di = rowsum(dO ∘ O) and LSE₂ = LSE·log2 e, into arrays padded to whole
// 64-row tiles (pad rows: LSE₂ = +∞ so P = 0, Di = 0); a row that saw nothing (LSE = −∞) also
// gets +∞, so its P is exactly 0 wherever it is recomputed. O and dO may have any row and head
// strides (O token-major, dO the gradient of its permute; 16-byte aligned rows): a dO that is not
// contiguous is copied, in the same pass, into dout_rows ([B·H, nq, d]) for the main kernels.
// A row is d/8 lanes of 16-byte vectors (4, 8 or 16 lanes for d 32, 64, 128), 32·8/d rows a warp:
// every load and store is a whole 16-byte vector (one warp a row with 2-byte lanes took as long
// as the copy of dO it replaces).
struct StridedRows {  // row i of (batch, head) bh at p + (bh / heads)·sb + (bh % heads)·sh + i·srow
  const __nv_bfloat16* p;
  int64_t sb, sh, srow, heads;
  __device__ const __nv_bfloat16* row(int64_t bh, int64_t i) const {
    return p + (bh / heads) * sb + (bh % heads) * sh + i * srow;
  }
};

__global__ void attn_bwd_prep(StridedRows o, StridedRows dout, __nv_bfloat16* __restrict__ dout_rows,
                              const float* __restrict__ lse, float* __restrict__ lse2, float* __restrict__ di,
                              int64_t rows_bh, int64_t nq, int64_t nq_pad, int d) {
  const int lanes = d / 8;  // a power of two ≤ 32 (d ∈ {32, 64, 128})
  const int lane = threadIdx.x & 31, sub = lane % lanes, per_warp = 32 / lanes;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * blockDim.x / 32;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32, total = rows_bh * nq_pad;
  // Grid-stride (2M-token sequences have more rows than the grid); every lane of a warp runs the
  // same number of iterations, so the shuffles below always have their whole warp.
  for (int64_t base = warp * per_warp; base < total; base += warps * per_warp) {
    const int64_t row = base + lane / lanes;
    const int64_t bh = row / nq_pad, i = row % nq_pad;
    float acc = 0.f;
    if (row < total && i < nq) {
      const uint4 ov = reinterpret_cast<const uint4*>(o.row(bh, i))[sub];
      const uint4 gv = reinterpret_cast<const uint4*>(dout.row(bh, i))[sub];
      if (dout_rows != nullptr) reinterpret_cast<uint4*>(dout_rows + (bh * nq + i) * d)[sub] = gv;
      const auto* o2 = reinterpret_cast<const __nv_bfloat162*>(&ov);
      const auto* g2 = reinterpret_cast<const __nv_bfloat162*>(&gv);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 a = __bfloat1622float2(o2[j]), b = __bfloat1622float2(g2[j]);
        acc += a.x * b.x + a.y * b.y;
      }
    }
    for (int off = lanes / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (sub == 0 && row < total) {
      float l2 = INFINITY;
      if (i < nq) {
        const float x = lse[bh * nq + i];
        l2 = x == -INFINITY ? INFINITY : x * 1.4426950408889634f;
      }
      lse2[row] = l2;
      di[row] = acc;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// dQ. Grid: (query tiles of 64, B·H). Block: 128 threads (4 warps × 16 rows).
template <int D>
__global__ void __launch_bounds__(128)
    attn_dq_mma(const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v,
                const bf16_t* __restrict__ dout, const float* __restrict__ lse2, const float* __restrict__ di,
                bf16_t* __restrict__ dq, int64_t nq_pad, LayoutView L, AttnGeometry g) {
  constexpr int LD = D + 8, THREADS = 128;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16_t* sQ = reinterpret_cast<bf16_t*>(smem);
  bf16_t* sdO = sQ + kTile * LD;
  bf16_t* sK = sdO + kTile * LD;     // [2][kTile][LD]
  bf16_t* sV = sK + 2 * kTile * LD;  // [2][kTile][LD]

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int64_t q0 = (static_cast<int64_t>(gridDim.x) - 1 - blockIdx.x) * kTile;
  const int bh = blockIdx.y, h = bh % g.heads;
  const bf16_t* qg = q + static_cast<int64_t>(bh) * g.nq * D;
  const bf16_t* dog = dout + static_cast<int64_t>(bh) * g.nq * D;
  const bf16_t* kg = k + static_cast<int64_t>(bh) * g.nk * D;
  const bf16_t* vg = v + static_cast<int64_t>(bh) * g.nk * D;

  RowWalk walk;
  walk.init(L, g, h, q0, kTile, kTile);
  int64_t k0 = 0;
  int64_t t = walk.next(0, &k0);

  load_tile_async<kTile, D, THREADS>(sQ, qg, q0, g.nq, tid);
  load_tile_async<kTile, D, THREADS>(sdO, dog, q0, g.nq, tid);
  if (t < walk.count) {
    load_tile_async<kTile, D, THREADS>(sK, kg, k0, g.nk, tid);
    load_tile_async<kTile, D, THREADS>(sV, vg, k0, g.nk, tid);
  }
  cp_async_commit();

  const int64_t row_a = q0 + warp * 16 + (lane >> 2);
  float rl2[2], rdi[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t i = static_cast<int64_t>(bh) * nq_pad + row_a + r * 8;  // padded: always in range
    rl2[r] = lse2[i];
    rdi[r] = di[i];
  }

  float acc[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
  int buf = 0;

  while (t < walk.count) {
    cp_async_wait<0>();
    __syncthreads();
    int64_t k0_next = 0;
    const int64_t t_next = walk.next(t + 1, &k0_next);
    if (t_next < walk.count) {
      load_tile_async<kTile, D, THREADS>(sK + (buf ^ 1) * kTile * LD, kg, k0_next, g.nk, tid);
      load_tile_async<kTile, D, THREADS>(sV + (buf ^ 1) * kTile * LD, vg, k0_next, g.nk, tid);
    }
    cp_async_commit();
    const bf16_t* cK = sK + buf * kTile * LD;
    const bf16_t* cV = sV + buf * kTile * LD;

    float s[8][4], dp[8][4];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[i][e] = dp[i][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t aq[4], ao[4];
      load_a(aq, sQ, LD, warp * 16, kk * 16, lane);
      load_a(ao, sdO, LD, warp * 16, kk * 16, lane);
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t b[4];
        load_b_nk(b, cK, LD, np * 16, kk * 16, lane);
        mma_16816(s[2 * np], aq, b[0], b[1]);
        mma_16816(s[2 * np + 1], aq, b[2], b[3]);
        load_b_nk(b, cV, LD, np * 16, kk * 16, lane);
        mma_16816(dp[2 * np], ao, b[0], b[1]);
        mma_16816(dp[2 * np + 1], ao, b[2], b[3]);
      }
    }

    // Hidden pairs' scores → −∞ in a pass of their own, so that the exponent's loop has no select
    // (P = 2^(−∞) = 0 exactly: LSE₂ is finite or +∞). With the select inside it, nvcc gave every
    // score a divergent branch around the mask (BSSY/BSYNC) for sm_80, as ptxas did in the sm_90a
    // backward (bench/HOPPER_NOTES.md, session 21).
    const bool need_mask =
        k0 + kTile > g.nk || (g.causal && (g.key_last != nullptr || k0 + kTile - 1 > q0 + warp * 16));
    if (need_mask) {
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int64_t j = k0 + nt * 8 + (lane & 3) * 2 + (e & 1);
          const int64_t i = row_a + (e >> 1) * 8;
          if (j >= g.nk || (g.causal && key_end_pos(g, j) > i)) s[nt][e] = -INFINITY;
        }
    }
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = exp2_ftz(s[nt][e] * g.scale_log2 - rl2[e >> 1]);
        s[nt][e] = p * (dp[nt][e] - rdi[e >> 1]);  // dS
      }

      // dQ += dS K.
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t a[4];
      c_to_a(a, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int dpi = 0; dpi < D / 16; ++dpi) {
        uint32_t b[4];
        load_b_kn(b, cK, LD, kk * 16, dpi * 16, lane);
        mma_16816(acc[2 * dpi], a, b[0], b[1]);
        mma_16816(acc[2 * dpi + 1], a, b[2], b[3]);
      }
    }
    t = t_next;
    k0 = k0_next;
    buf ^= 1;
  }
  cp_async_wait<0>();
  __syncthreads();
  store_rows_bf16<D>(acc, g.scale, g.scale, sQ + warp * 16 * LD, dq + static_cast<int64_t>(bh) * g.nq * D,
                     q0 + warp * 16, g.nq, lane);
}

// ---------------------------------------------------------------------------------------------
// dK, dV. Grid: (key tiles of 64, B·H). Block: 128 threads (4 warps × 16 key rows).
template <int D>
__global__ void __launch_bounds__(128)
    attn_dkdv_mma(const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v,
                  const bf16_t* __restrict__ dout, const float* __restrict__ lse2, const float* __restrict__ di,
                  bf16_t* __restrict__ dk, bf16_t* __restrict__ dv, int64_t nq_pad, LayoutView L, AttnGeometry g) {
  constexpr int LD = D + 8, THREADS = 128;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16_t* sK = reinterpret_cast<bf16_t*>(smem);
  bf16_t* sV = sK + kTile * LD;
  bf16_t* sQ = sV + kTile * LD;                                // [2][kTile][LD]
  bf16_t* sdO = sQ + 2 * kTile * LD;                           // [2][kTile][LD]
  float* sL = reinterpret_cast<float*>(sdO + 2 * kTile * LD);  // [2][kTile] LSE₂
  float* sD = sL + 2 * kTile;                                  // [2][kTile] Di

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int64_t k0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int bh = blockIdx.y, h = bh % g.heads;
  const bf16_t* qg = q + static_cast<int64_t>(bh) * g.nq * D;
  const bf16_t* dog = dout + static_cast<int64_t>(bh) * g.nq * D;
  const bf16_t* kg = k + static_cast<int64_t>(bh) * g.nk * D;
  const bf16_t* vg = v + static_cast<int64_t>(bh) * g.nk * D;
  const float* lg = lse2 + static_cast<int64_t>(bh) * nq_pad;
  const float* dg = di + static_cast<int64_t>(bh) * nq_pad;

  ColWalk walk;
  walk.init(L, g, h, k0, kTile);
  int64_t q0 = 0;
  int64_t t = walk.next(walk.first, &q0);

  auto load_q_side = [&](int b, int64_t qs) {
    load_tile_async<kTile, D, THREADS>(sQ + b * kTile * LD, qg, qs, g.nq, tid);
    load_tile_async<kTile, D, THREADS>(sdO + b * kTile * LD, dog, qs, g.nq, tid);
    if (tid < 16)
      cp_async16(sL + b * kTile + tid * 4, lg + qs + tid * 4, true);
    else if (tid < 32)
      cp_async16(sD + b * kTile + (tid - 16) * 4, dg + qs + (tid - 16) * 4, true);
  };
  load_tile_async<kTile, D, THREADS>(sK, kg, k0, g.nk, tid);
  load_tile_async<kTile, D, THREADS>(sV, vg, k0, g.nk, tid);
  if (t < walk.count) load_q_side(0, q0);
  cp_async_commit();

  float dka[D / 8][4], dva[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) dka[i][e] = dva[i][e] = 0.f;
  const int64_t key_a = k0 + warp * 16 + (lane >> 2);  // this thread's keys: key_a, key_a + 8
  int64_t kend[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t j = key_a + r * 8;
    kend[r] = j < g.nk ? key_end_pos(g, j) : INT64_MAX;  // keys past the end: never stored
  }
  int buf = 0;

  while (t < walk.count) {
    cp_async_wait<0>();
    __syncthreads();
    int64_t q0_next = 0;
    const int64_t t_next = walk.next(t + 1, &q0_next);
    if (t_next < walk.count) load_q_side(buf ^ 1, q0_next);
    cp_async_commit();
    const bf16_t* cQ = sQ + buf * kTile * LD;
    const bf16_t* cO = sdO + buf * kTile * LD;
    const float* cL = sL + buf * kTile;
    const float* cD = sD + buf * kTile;

    // Sᵀ = K Qᵀ (16 keys × 64 queries per warp).
    float s[8][4];
#pragma unroll
    for (int i = 0; i < 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t a[4];
      load_a(a, sK, LD, warp * 16, kk * 16, lane);
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t b[4];
        load_b_nk(b, cQ, LD, np * 16, kk * 16, lane);
        mma_16816(s[2 * np], a, b[0], b[1]);
        mma_16816(s[2 * np + 1], a, b[2], b[3]);
      }
    }
    // Pᵀ = exp2(Sᵀ·scale₂ − LSE₂[query]); hidden (key, query) pairs → 0.
    const bool need_mask = g.causal && (g.key_last != nullptr || k0 + warp * 16 + 15 > q0);
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
      const int col = nt * 8 + (lane & 3) * 2;
      const float2 l2 = *reinterpret_cast<const float2*>(cL + col);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float p = exp2_ftz(s[nt][e] * g.scale_log2 - ((e & 1) ? l2.y : l2.x));
        if (need_mask && kend[e >> 1] > q0 + col + (e & 1)) p = 0.f;
        s[nt][e] = p;
      }
    }
    // dV += Pᵀ dO.
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t a[4];
      c_to_a(a, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int dpi = 0; dpi < D / 16; ++dpi) {
        uint32_t b[4];
        load_b_kn(b, cO, LD, kk * 16, dpi * 16, lane);
        mma_16816(dva[2 * dpi], a, b[0], b[1]);
        mma_16816(dva[2 * dpi + 1], a, b[2], b[3]);
      }
    }
    // dPᵀ = V dOᵀ, then dSᵀ = Pᵀ ∘ (dPᵀ − Di[query]).
    float dp[8][4];
#pragma unroll
    for (int i = 0; i < 8; ++i) dp[i][0] = dp[i][1] = dp[i][2] = dp[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t a[4];
      load_a(a, sV, LD, warp * 16, kk * 16, lane);
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t b[4];
        load_b_nk(b, cO, LD, np * 16, kk * 16, lane);
        mma_16816(dp[2 * np], a, b[0], b[1]);
        mma_16816(dp[2 * np + 1], a, b[2], b[3]);
      }
    }
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
      const float2 dd = *reinterpret_cast<const float2*>(cD + nt * 8 + (lane & 3) * 2);
#pragma unroll
      for (int e = 0; e < 4; ++e) s[nt][e] = s[nt][e] * (dp[nt][e] - ((e & 1) ? dd.y : dd.x));
    }
    // dK += dSᵀ Q.
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t a[4];
      c_to_a(a, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int dpi = 0; dpi < D / 16; ++dpi) {
        uint32_t b[4];
        load_b_kn(b, cQ, LD, kk * 16, dpi * 16, lane);
        mma_16816(dka[2 * dpi], a, b[0], b[1]);
        mma_16816(dka[2 * dpi + 1], a, b[2], b[3]);
      }
    }
    t = t_next;
    q0 = q0_next;
    buf ^= 1;
  }
  cp_async_wait<0>();
  __syncthreads();
  const int64_t base = static_cast<int64_t>(bh) * g.nk * D;
  store_rows_bf16<D>(dva, 1.f, 1.f, sV + warp * 16 * LD, dv + base, k0 + warp * 16, g.nk, lane);
  store_rows_bf16<D>(dka, g.scale, g.scale, sK + warp * 16 * LD, dk + base, k0 + warp * 16, g.nk, lane);
}

}  // namespace sparrow::attn::cuda
