// The CPU attention kernels' tile products: a small register-blocked GEMM that packs nothing
// (tile_gemm), the SIMD abstraction it runs on (AVX-512, AVX2, or a portable scalar fallback),
// and the one packing step the kernels do (pack_transposed). Used by block_attention.cpp only.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace sparrow::attn::cpu {

// ---- A small register-blocked GEMM for the tile products --------------------------------------
// C[M×N] (=, or +=) A[M×K]·B[K×N]: A read through strides (rsa, csa), so a transposed tile is
// read in place; B and C row-major. N must be a multiple of the vector length L (the callers pad
// key tiles, and take this path only when D is a multiple of L). Tiles here are small (K = D or a
// block), so Eigen's general GEMM spends much of its time packing both operands on every call;
// this kernel packs nothing: each MR-row strip of C lives in registers over the whole K loop,
// B rows are read as vectors and A entries broadcast.
#if defined(__AVX512F__)
template <class T>
struct Simd;
template <>
struct Simd<float> {
  using V = __m512;
  static constexpr int L = 16;
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V zero() { return _mm512_setzero_ps(); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
};
template <>
struct Simd<double> {
  using V = __m512d;
  static constexpr int L = 8;
  static V load(const double* p) { return _mm512_loadu_pd(p); }
  static void store(double* p, V v) { _mm512_storeu_pd(p, v); }
  static V set1(double x) { return _mm512_set1_pd(x); }
  static V zero() { return _mm512_setzero_pd(); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
};
constexpr int kMR = 12, kNV = 2;   // 24 accumulators of the 32 zmm registers
constexpr int kMRt = 6, kNVt = 4;  // left operand read transposed: 6 rows × 4 vectors measured 3% faster
#elif defined(__AVX2__) && defined(__FMA__)
template <class T>
struct Simd;
template <>
struct Simd<float> {
  using V = __m256;
  static constexpr int L = 8;
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V zero() { return _mm256_setzero_ps(); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
};
template <>
struct Simd<double> {
  using V = __m256d;
  static constexpr int L = 4;
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static V set1(double x) { return _mm256_set1_pd(x); }
  static V zero() { return _mm256_setzero_pd(); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
};
constexpr int kMR = 6, kNV = 2;  // 12 accumulators of the 16 ymm registers
constexpr int kMRt = kMR, kNVt = kNV;
#else
template <class T>
struct Simd {  // portable scalar fallback
  using V = T;
  static constexpr int L = 1;
  static V load(const T* p) { return *p; }
  static void store(T* p, V v) { *p = v; }
  static V set1(T x) { return x; }
  static V zero() { return T(0); }
  static V fma(V a, V b, V c) { return a * b + c; }
  static V add(V a, V b) { return a + b; }
};
constexpr int kMR = 4, kNV = 4;
constexpr int kMRt = kMR, kNVt = kNV;
#endif

template <class T, int MR, int NV>
void micro_kernel(int64_t K, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t ldb, T* C, int64_t ldc,
                  bool accumulate) {
  using S = Simd<T>;
  using V = typename S::V;
  V c[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) c[i][v] = S::zero();
  for (int64_t p = 0; p < K; ++p) {
    const T* b = B + p * ldb;
    const T* a = A + p * csa;
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = S::load(b + v * S::L);
    for (int i = 0; i < MR; ++i) {
      const V ai = S::set1(a[i * rsa]);
      for (int v = 0; v < NV; ++v) c[i][v] = S::fma(ai, bv[v], c[i][v]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) {
      T* cp = C + i * ldc + v * S::L;
      S::store(cp, accumulate ? S::add(S::load(cp), c[i][v]) : c[i][v]);
    }
}

template <class T, int NV, int MR = kMR>
void micro_rows(int mr, int64_t K, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t ldb, T* C, int64_t ldc,
                bool accumulate) {
  if constexpr (MR > 1) {
    if (mr < MR) return micro_rows<T, NV, MR - 1>(mr, K, A, rsa, csa, B, ldb, C, ldc, accumulate);
  }
  micro_kernel<T, MR, NV>(K, A, rsa, csa, B, ldb, C, ldc, accumulate);
}

template <class T, int MR, int NV>
void tile_gemm_blocked(int64_t M, int64_t N, int64_t K, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t ldb,
                       T* C, int64_t ldc, bool accumulate, bool rows_outer) {
  constexpr int L = Simd<T>::L, W = NV * L;
  const auto strip = [&](int64_t i0, int64_t j0) {  // rows [i0, i0 + MR) × columns [j0, j0 + W)
    const int mr = static_cast<int>(std::min<int64_t>(MR, M - i0));
    const T* a = A + i0 * rsa;
    T* c = C + i0 * ldc;
    if (j0 + W <= N)
      micro_rows<T, NV, MR>(mr, K, a, rsa, csa, B + j0, ldb, c + j0, ldc, accumulate);
    else
      for (int64_t j = j0; j < N; j += L) micro_rows<T, 1, MR>(mr, K, a, rsa, csa, B + j, ldb, c + j, ldc, accumulate);
  };
  if (rows_outer) {
    for (int64_t i0 = 0; i0 < M; i0 += MR)
      for (int64_t j0 = 0; j0 < N; j0 += W) strip(i0, j0);
  } else {
    for (int64_t j0 = 0; j0 < N; j0 += W)
      for (int64_t i0 = 0; i0 < M; i0 += MR) strip(i0, j0);
  }
}

// A read in place by rows (csa = 1): 12×2-vector strips, row strips outer, so a strip of A stays
// in L1 across the panels of B. A read transposed (Pᵀ, dSᵀ): 6×4-vector strips, panels outer, so
// a panel of B stays in L1 instead. Measured on one core (AVX-512, f32, tiles of 128-256 × 64-128
// × 64-256): 160-170 GFLOP/s rows-in-place, 159 transposed, against 171 for the kernel in L1.
template <class T>
void tile_gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t ldb, T* C,
               int64_t ldc, bool accumulate) {
  if (csa == 1)
    tile_gemm_blocked<T, kMR, kNV>(M, N, K, A, rsa, csa, B, ldb, C, ldc, accumulate, true);
  else
    tile_gemm_blocked<T, kMRt, kNVt>(M, N, K, A, rsa, csa, B, ldb, C, ldc, accumulate, false);
}

template <class T>
constexpr int64_t simd_len() {
  return Simd<T>::L;
}

#if defined(__AVX512F__)
// In-register transpose of 16 rows of 16 floats.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
    t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xdd);
    t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
    t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xdd);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
    r[4 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0x88);
    r[12 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0xdd);
  }
}
#endif

// dst[d·ld + r] = scale·src[r·D + d] for r < rows, d < D: the transposed, scaled copy of a
// rows × D tile (16 × 16 blocks in registers for f32 on AVX-512; scalar for the rest). With
// scaled_copy, also scaled_copy[r·D + d] = scale·src[r·D + d].
template <class T>
void pack_transposed(const T* src, int64_t rows, int64_t D, T scale, T* dst, int64_t ld, T* scaled_copy = nullptr) {
  int64_t r0 = 0;
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    if (D % 16 == 0) {
      const __m512 s = _mm512_set1_ps(scale);
      for (; r0 + 16 <= rows; r0 += 16)
        for (int64_t d0 = 0; d0 < D; d0 += 16) {
          __m512 x[16];
          for (int i = 0; i < 16; ++i) {
            x[i] = _mm512_mul_ps(_mm512_loadu_ps(src + (r0 + i) * D + d0), s);
            if (scaled_copy) _mm512_storeu_ps(scaled_copy + (r0 + i) * D + d0, x[i]);
          }
          transpose16(x);
          for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + (d0 + i) * ld + r0, x[i]);
        }
    }
  }
#endif
  for (int64_t r = r0; r < rows; ++r)
    for (int64_t d = 0; d < D; ++d) {
      const T x = src[r * D + d] * scale;
      dst[d * ld + r] = x;
      if (scaled_copy) scaled_copy[r * D + d] = x;
    }
}

}  // namespace sparrow::attn::cpu
