// Warp-level tensor-core building blocks for bf16 (sm_80+): mma.sync m16n8k16 with f32
// accumulation, ldmatrix fragment loads from shared memory, and cp.async 16-byte copies.
//
// Fragment layouts of mma.m16n8k16 (lane = 4·g + c, g = lane / 4, c = lane % 4):
//   A 16×16 (row-major): a0 = (g, 2c..2c+1), a1 = (g+8, 2c..), a2 = (g, 2c+8..), a3 = (g+8, 2c+8..)
//   B 16×8  (k × n):     b0 = (k 2c..2c+1, n g), b1 = (k 2c+8.., n g)
//   C 16×8:              c0,c1 = (g, 2c..2c+1), c2,c3 = (g+8, 2c..2c+1)
// So the C fragments of two neighbouring 8-column tiles are exactly the A fragment of one
// 16-deep k-step: P = softmax(S) feeds the next product straight from registers.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace sparrow::attn::cuda {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// c += a · b (bf16 inputs, f32 accumulators).
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// A fragment of the 16×16 block at (row0, col0) of a row-major bf16 tile with row stride ld.
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const __nv_bfloat16* s, int ld, int row0, int col0, int lane) {
  ldmatrix_x4(a, s + (row0 + (lane & 15)) * ld + col0 + ((lane >> 4) << 3));
}

// B fragments of two 8-wide n-tiles (n0..n0+15) for the k-step k0..k0+15, from a tile stored
// [n][k] (row n holds the k-vector: K or V or Q or dO used as "the transposed operand").
// b[0], b[1]: n-tile n0; b[2], b[3]: n-tile n0 + 8.
__device__ __forceinline__ void load_b_nk(uint32_t (&b)[4], const __nv_bfloat16* s, int ld, int n0, int k0, int lane) {
  ldmatrix_x4(b, s + (n0 + (lane & 7) + ((lane >> 4) << 3)) * ld + k0 + (((lane >> 3) & 1) << 3));
}

// Same, from a tile stored [k][n] (row k holds the n-vector: V in P·V, K in dS·K, ...).
__device__ __forceinline__ void load_b_kn(uint32_t (&b)[4], const __nv_bfloat16* s, int ld, int k0, int n0, int lane) {
  ldmatrix_x4_trans(b, s + (k0 + (lane & 7) + (((lane >> 3) & 1) << 3)) * ld + n0 + ((lane >> 4) << 3));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// A fragment for k-step kk from C fragments c[2kk], c[2kk+1] (a 16×64 f32 tile → bf16).
__device__ __forceinline__ void c_to_a(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
  a[0] = pack_bf16(c0[0], c0[1]);
  a[1] = pack_bf16(c0[2], c0[3]);
  a[2] = pack_bf16(c1[0], c1[1]);
  a[3] = pack_bf16(c1[2], c1[3]);
}

// 16-byte global → shared copy; when !valid the destination is zero-filled (src not read).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Copies rows [r0, r0 + ROWS) of a contiguous [n][D] bf16 matrix into a shared tile with row
// stride D + 8 (the 16-byte pad keeps ldmatrix's 8 row addresses on distinct banks); rows past
// n are zero-filled so that masked-out keys contribute exact zeros (never NaN garbage).
template <int ROWS, int D, int THREADS>
__device__ __forceinline__ void load_tile_async(__nv_bfloat16* s, const __nv_bfloat16* g, int64_t r0, int64_t n,
                                                int tid) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  constexpr int kLd = D + 8;
#pragma unroll
  for (int c = tid; c < ROWS * kChunks; c += THREADS) {
    const int row = c / kChunks, ch = c % kChunks;
    const bool valid = r0 + row < n;
    const __nv_bfloat16* src = valid ? g + (r0 + row) * D + ch * 8 : g;
    cp_async16(s + row * kLd + ch * 8, src, valid);
  }
}

// Writes a warp's 16×D f32 accumulator (C fragments acc[D/8][4], rows row0.. of the tile) as
// bf16 rows of a [n][D] matrix: staged through the warp's own 16 shared rows (stride D + 8) so
// the global stores are whole 16-byte chunks. Rows ≥ n are not written.
template <int D>
__device__ __forceinline__ void store_rows_bf16(const float (&acc)[D / 8][4], float mul0, float mul1,
                                                __nv_bfloat16* stage, __nv_bfloat16* g, int64_t grow0, int64_t n,
                                                int lane) {
  constexpr int kLd = D + 8;
  const int r = lane >> 2, c = (lane & 3) * 2;
  __syncwarp();
#pragma unroll
  for (int nt = 0; nt < D / 8; ++nt) {
    *reinterpret_cast<uint32_t*>(stage + r * kLd + nt * 8 + c) = pack_bf16(acc[nt][0] * mul0, acc[nt][1] * mul0);
    *reinterpret_cast<uint32_t*>(stage + (r + 8) * kLd + nt * 8 + c) = pack_bf16(acc[nt][2] * mul1, acc[nt][3] * mul1);
  }
  __syncwarp();
  constexpr int kChunks = D / 8;
#pragma unroll
  for (int i = lane; i < 16 * kChunks; i += 32) {
    const int row = i / kChunks, ch = i % kChunks;
    if (grow0 + row < n)
      *reinterpret_cast<uint4*>(g + (grow0 + row) * D + ch * 8) =
          *reinterpret_cast<const uint4*>(stage + row * kLd + ch * 8);
  }
}

}  // namespace sparrow::attn::cuda
