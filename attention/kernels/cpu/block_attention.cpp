// CPU block attention: one task per (batch·head, block), each on its own tiles, so OpenMP needs
// no atomics. Scores live only in a per-thread block_size × block_size tile; nothing N×N exists.
//
// Forward, per query block i (rows r), over its active key blocks j (online softmax):
//   S = (scale·Qi) Kjᵀ, masked entries −inf
//   m' = max(m, rowmax S);  α = exp(m − m');  P = exp(S − m')
//   l = α·l + rowsum P;     acc = α·acc + P Vj;  m = m'
//   O = acc / l, LSE = m + log l   (a row that saw nothing: O = 0, LSE = −inf).
// Backward (P recomputed as exp(S − LSE), which is the normalised probability):
//   Di = rowsum(dO ∘ O);  dP = dO Vᵀ;  dS = P ∘ (dP − Di)
//   dQi = scale · Σj dS Kj            (pass 1: task per query block, walks the CSR rows)
//   dVj = Σi Pᵀ dOi, dKj = scale · Σi dSᵀ Qi   (pass 2: task per key block, walks the transpose)
// When there are at least as many (batch·head) pairs as threads, one pass replaces both: a task
// per head walks its key blocks and adds dQ from the same dS tiles (five products per tile pair
// instead of seven).
//
// Two implementations of the products. When D is a whole number of SIMD vectors (16 f32 / 8 f64
// with AVX-512), every product runs on tile_gemm, a register-blocked kernel that packs nothing:
// it reads its left operand in place through strides (so Pᵀ, dSᵀ are free) and its right operand
// as contiguous rows. The only packing is a transpose per tile owner: (scale·Qi)ᵀ per forward
// task, (scale·Kj)ᵀ and Vjᵀ per key block in the one-pass backward. Softmax arithmetic runs along
// contiguous rows of queries (forward, pass 1) or keys (one-pass backward) with vectorised exp;
// hidden entries are set to exactly 0 after the exp. Otherwise (odd D) the Eigen tiles below
// (forward_tiles, KeyBlockGradsEigen, Eigen pass 1) are used. Both are tested against the
// reference at 1e-10 (f64) and 1e-5 (f32).
#define EIGEN_DONT_PARALLELIZE  // parallelism is ours (over tiles); Eigen runs each tile serially
#include "attention/kernels/cpu/block_attention.h"
#include "attention/kernels/cpu/tile_gemm.h"
#include "framework/ops/ops.h"

#include <immintrin.h>
#include <omp.h>
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

namespace sparrow::attn::cpu {
namespace {

// The geometry of one call and, under causal masking, what each key block can show.
struct Plan {
  int64_t B = 0, H = 0, Nq = 0, Nk = 0, D = 0, bs = 0, nqb = 0, nkb = 0;
  double scale = 1;
  bool causal = false;
  const BlockLayout* layout = nullptr;
  const int64_t* key_last = nullptr;  // null: key j summarises position j only
  // Causal: the smallest and largest key_last in each key block. A query block whose last row
  // is before kmin sees nothing of the block; one whose first row is at or after kmax sees all.
  std::vector<int64_t> kmin, kmax;

  int64_t q_rows(int64_t qb) const { return std::min(bs, Nq - qb * bs); }
  int64_t k_cols(int64_t kb) const { return std::min(bs, Nk - kb * bs); }
  int64_t kl(int64_t j) const { return key_last ? key_last[j] : j; }
  bool visible(int64_t qb, int64_t kb) const { return !causal || kmin[kb] <= qb * bs + q_rows(qb) - 1; }
  bool needs_mask(int64_t qb, int64_t kb) const { return causal && kmax[kb] > qb * bs; }
  // Key blocks [kb0, kb1) against query blocks [qb0, qb1): is any element masked?
  bool run_needs_mask(int64_t qb0, int64_t kb0, int64_t kb1) const {
    if (!causal) return false;
    for (int64_t kb = kb0; kb < kb1; ++kb)
      if (needs_mask(qb0, kb)) return true;
    return false;
  }
};

Plan make_plan(const Tensor& q, const Tensor& k, const BlockAttentionArgs& args) {
  Plan p;
  p.B = q.size(0);
  p.H = q.size(1);
  p.Nq = q.size(2);
  p.D = q.size(3);
  p.Nk = k.size(2);
  p.layout = args.layout;
  p.bs = args.layout ? args.layout->block_size : args.block_size;
  p.nqb = (p.Nq + p.bs - 1) / p.bs;
  p.nkb = (p.Nk + p.bs - 1) / p.bs;
  p.scale = args.scale > 0 ? args.scale : 1.0 / std::sqrt(static_cast<double>(p.D));
  p.causal = args.causal;
  p.key_last = args.key_last.empty() ? nullptr : args.key_last.data();
  if (p.causal) {
    p.kmin.assign(p.nkb, std::numeric_limits<int64_t>::max());
    p.kmax.assign(p.nkb, std::numeric_limits<int64_t>::min());
    for (int64_t j = 0; j < p.Nk; ++j) {
      p.kmin[j / p.bs] = std::min(p.kmin[j / p.bs], p.kl(j));
      p.kmax[j / p.bs] = std::max(p.kmax[j / p.bs], p.kl(j));
    }
  }
  return p;
}

struct Span {
  const int32_t* p;
  int64_t n;
};

// Key blocks of query block qb for head h: the layout's CSR row, or (dense) every key block
// the block can see, generated into buf.
Span keys_of(const Plan& p, int64_t h, int64_t qb, std::vector<int32_t>& buf) {
  if (p.layout) {
    const BlockCSR& c = p.layout->head(h);
    return {c.col_idx.data() + c.row_ptr[qb], c.row_ptr[qb + 1] - c.row_ptr[qb]};
  }
  buf.clear();
  for (int64_t kb = 0; kb < p.nkb; ++kb)
    if (p.visible(qb, kb)) buf.push_back(static_cast<int32_t>(kb));
  return {buf.data(), static_cast<int64_t>(buf.size())};
}

// Query blocks that read key block kb for head h: the layout's transpose, or (dense) generated.
Span queries_of(const Plan& p, int64_t h, int64_t kb, std::vector<int32_t>& buf) {
  if (p.layout) {
    const BlockCSR& c = p.layout->head(h);
    return {c.row_idx.data() + c.col_ptr[kb], c.col_ptr[kb + 1] - c.col_ptr[kb]};
  }
  buf.clear();
  for (int64_t qb = 0; qb < p.nqb; ++qb)
    if (p.visible(qb, kb)) buf.push_back(static_cast<int32_t>(qb));
  return {buf.data(), static_cast<int64_t>(buf.size())};
}

// The active list as runs of consecutive blocks, at most max_run long: consecutive blocks are
// contiguous rows of K (or Q), so a run is one wider GEMM instead of several 64-wide ones (less
// packing overhead per FLOP). Blocks that `usable` rejects break runs and are skipped.
// Returns false when the list is exhausted; else [first, end) is the next run.
template <class Usable>
bool next_run(const Span& s, int64_t& i, int64_t max_run, const Usable& usable, int64_t& first, int64_t& end) {
  while (i < s.n && !usable(s.p[i])) ++i;
  if (i == s.n) return false;
  first = s.p[i++];
  end = first + 1;
  while (i < s.n && s.p[i] == end && end - first < max_run && usable(end)) {
    ++end;
    ++i;
  }
  return true;
}

// Blocks per run: about 256 keys (or queries) a tile.
int64_t run_blocks(int64_t bs) { return std::max<int64_t>(1, 256 / bs); }

// A run of consecutive active blocks [b0, b1).
struct Run {
  int64_t b0, b1;
};

// Every usable run of a list, in order (next_run's runs, collected so a loop can look ahead).
template <class Usable>
void runs_of(const Span& s, int64_t max_run, const Usable& usable, std::vector<Run>& out) {
  out.clear();
  int64_t i = 0, b0, b1;
  while (next_run(s, i, max_run, usable, b0, b1)) out.push_back({b0, b1});
}

// Software prefetch (into L2) of [ptr, ptr + bytes). Block-sparse layouts jump between blocks
// of K/V (forward) or Q/dO (backward): each block is a 16–32 KB stream, too short for the
// hardware prefetcher to ramp up, so without this every tile product starts on DRAM misses.
inline void prefetch_l2(const void* ptr, int64_t bytes) {
  const char* c = static_cast<const char*>(ptr);
  for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(c + o, 0, 2);
}

template <class T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using CMap = Eigen::Map<const Mat<T>>;
template <class T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
template <class T>
using CRowMap = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>;

template <class T>
constexpr T neg_inf() {
  return -std::numeric_limits<T>::infinity();
}

// Causal mask of a score tile S (rows × cols: query rows q0.., keys k0..): key j is hidden
// from position p when key_last[j] > p.
template <class Tile>
void mask_scores(const Plan& p, Tile& S, int64_t q0, int64_t k0) {
  using T = typename Tile::Scalar;
  const int64_t rows = S.rows(), cols = S.cols();
  for (int64_t r = 0; r < rows; ++r) {
    if (!p.key_last) {  // keys hidden from q0+r: those at positions > q0+r, a row's tail
      const int64_t first = std::max<int64_t>(0, q0 + r - k0 + 1);
      if (first < cols) S.row(r).segment(first, cols - first).setConstant(neg_inf<T>());
    } else {
      for (int64_t c = 0; c < cols; ++c)
        if (p.key_last[k0 + c] > q0 + r) S(r, c) = neg_inf<T>();
    }
  }
}

// The same mask on a transposed tile St (cols × rows: key rows k0.., query columns q0..).
template <class Tile>
void mask_scores_transposed(const Plan& p, Tile& St, int64_t q0, int64_t k0) {
  using T = typename Tile::Scalar;
  const int64_t cols = St.rows(), rows = St.cols();
  for (int64_t c = 0; c < cols; ++c) {
    if (!p.key_last) {  // queries that cannot see key k0+c: positions < k0+c, a row's head
      const int64_t n = std::min<int64_t>(rows, std::max<int64_t>(0, k0 + c - q0));
      if (n > 0) St.row(c).head(n).setConstant(neg_inf<T>());
    } else {
      for (int64_t r = 0; r < rows; ++r)
        if (p.key_last[k0 + c] > q0 + r) St(c, r) = neg_inf<T>();
    }
  }
}

// Pᵀ tiles: the vectorised exp leaves ~1e-38 where exactly 0 is meant for queries that saw no
// key (LSE = +inf); zero those columns so such queries pass no gradient at all.
template <class Tile, class Row>
void zero_unseen_columns(Tile& St, const Row& Lse) {
  using T = typename Tile::Scalar;
  for (int64_t r = 0; r < Lse.size(); ++r)
    if (Lse(r) == std::numeric_limits<T>::infinity()) St.col(r).setZero();
}

template <class T>
void forward_tiles(const Plan& p, const T* q, const T* k, const T* v, T* o, T* lse) {
  const int64_t tasks = p.B * p.H * p.nqb, D = p.D, bs = p.bs, run = run_blocks(bs);
#pragma omp parallel
  {
    Mat<T> qs(bs, D), s(bs, run * bs), acc(bs, D);
    Vec<T> m(bs), l(bs);
    std::vector<int32_t> buf;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t bh = t / p.nqb, qb = t % p.nqb, h = bh % p.H;
      const int64_t q0 = qb * bs, rows = p.q_rows(qb);
      const T* kbh = k + bh * p.Nk * D;
      const T* vbh = v + bh * p.Nk * D;
      auto Qs = qs.topRows(rows);
      Qs = CMap<T>(q + (bh * p.Nq + q0) * D, rows, D) * static_cast<T>(p.scale);
      auto M = m.head(rows), L = l.head(rows);
      auto A = acc.topRows(rows);
      M.setConstant(neg_inf<T>());
      L.setZero();
      A.setZero();
      const Span ks = keys_of(p, h, qb, buf);
      const auto usable = [&](int64_t kb) { return p.visible(qb, kb); };
      int64_t i = 0, kb0, kb1;
      while (next_run(ks, i, run, usable, kb0, kb1)) {
        const int64_t k0 = kb0 * bs, cols = std::min(kb1 * bs, p.Nk) - k0;
        auto S = s.topLeftCorner(rows, cols);
        S.noalias() = Qs * CMap<T>(kbh + k0 * D, cols, D).transpose();
        if (p.run_needs_mask(qb, kb0, kb1)) mask_scores(p, S, q0, k0);
        // Row by row: each row of the row-major tiles is contiguous, so the subtraction and exp
        // vectorise (a colwise() broadcast over a row-major tile does not). The vectorised exp
        // clamps its argument, so exp(−inf) is ~1e-38 rather than 0: negligible beside a visible
        // key's weight (≥ 1 at the row max), but a row with no visible key yet must contribute
        // exactly nothing, so it is zeroed explicitly.
        for (int64_t r = 0; r < rows; ++r) {
          auto Sr = S.row(r);
          const T mx = std::max(M(r), Sr.maxCoeff());
          if (mx == neg_inf<T>()) {
            Sr.setZero();
            continue;
          }
          const T alpha = std::exp(M(r) - mx);  // scalar exp: exactly 0 when M(r) = −inf
          M(r) = mx;
          Sr = (Sr.array() - mx).exp().matrix();
          L(r) = L(r) * alpha + Sr.sum();
          A.row(r) *= alpha;
        }
        A.noalias() += S * CMap<T>(vbh + k0 * D, cols, D);
      }
      T* orow = o + (bh * p.Nq + q0) * D;
      T* lrow = lse + bh * p.Nq + q0;
      for (int64_t r = 0; r < rows; ++r) {
        Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>> out(orow + r * D, D);
        if (L(r) > 0) {
          out = A.row(r) / L(r);
          lrow[r] = M(r) + std::log(L(r));
        } else {
          out.setZero();
          lrow[r] = neg_inf<T>();
        }
      }
    }
  }
}

// The forward on tile_gemm (D a multiple of the vector length), in the transposed orientation:
// a task packs (scale·Qi)ᵀ once (its query columns padded to whole vectors), then per key run
//   Sᵀ = Kj·(scale·Qi)ᵀ   (key rows × query columns; every row a contiguous vector of queries)
// so the online softmax's per-query max, sum and exp run down whole rows as vector operations,
// and acc += P·Vj reads Sᵀ in place as the transposed left operand. Hidden entries are −inf for
// the max and exactly 0 after the exp (a query that has seen nothing yet has m = −inf).
//
// One softmax step covers a group of runs (up to `run` blocks together, consecutive or not), so
// a sparse row of a few scattered key blocks pays the per-step work (max, rescale factors, the
// rescale of acc) once instead of once per block. K of the next group and V of this one are
// prefetched while the current products run.
template <class T>
void forward_tiles_fast(const Plan& p, const T* q, const T* k, const T* v, T* o, T* lse) {
  const int64_t tasks = p.B * p.H * p.nqb, D = p.D, bs = p.bs, run = run_blocks(bs), L = simd_len<T>();
  const int64_t npq_max = (bs + L - 1) / L * L;
  using Row = Eigen::Array<T, 1, Eigen::Dynamic>;
  using RowMap = Eigen::Map<Row>;  // rows of npq are whole vectors of an aligned buffer
#pragma omp parallel
  {
    std::vector<T, Eigen::aligned_allocator<T>> qt(D * npq_max), st(run * bs * npq_max), acc(bs * D), mv(npq_max),
        lv(npq_max), av(npq_max);
    std::vector<int32_t> buf;
    std::vector<Run> runs;
    std::vector<int64_t> group_end;  // runs [group_end[g−1], group_end[g]) form softmax step g
    // Chunks of consecutive tasks, so that a thread's next task is usually t + 1 and its query
    // rows (the next rows of q) can be prefetched.
#pragma omp for schedule(dynamic, 4)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t bh = t / p.nqb, qb = t % p.nqb, h = bh % p.H;
      const int64_t q0 = qb * bs, rows = p.q_rows(qb), npq = (rows + L - 1) / L * L;
      const T* kbh = k + bh * p.Nk * D;
      const T* vbh = v + bh * p.Nk * D;
      const T* Q = q + (bh * p.Nq + q0) * D;
      if (t + 1 < tasks) prefetch_l2(Q + rows * D, p.q_rows((t + 1) % p.nqb) * D * static_cast<int64_t>(sizeof(T)));
      const auto first_key = [&](const Run& r) { return r.b0 * bs; };
      const auto key_count = [&](const Run& r) { return std::min(r.b1 * bs, p.Nk) - r.b0 * bs; };
      const Span ks = keys_of(p, h, qb, buf);
      const auto usable = [&](int64_t kb) { return p.visible(qb, kb); };
      runs_of(ks, run, usable, runs);
      group_end.clear();
      for (size_t r = 0; r < runs.size();) {
        int64_t n = 0;
        while (r < runs.size() && n + (runs[r].b1 - runs[r].b0) <= run) {
          n += runs[r].b1 - runs[r].b0;
          ++r;
        }
        group_end.push_back(static_cast<int64_t>(r));
      }
      const auto prefetch_group = [&](size_t g, const T* base) {
        for (int64_t r = g ? group_end[g - 1] : 0; r < group_end[g]; ++r)
          prefetch_l2(base + first_key(runs[r]) * D, key_count(runs[r]) * D * static_cast<int64_t>(sizeof(T)));
      };
      if (!group_end.empty()) prefetch_group(0, kbh);
      pack_transposed(Q, rows, D, static_cast<T>(p.scale), qt.data(), npq);
      for (int64_t d = 0; d < D; ++d)
        for (int64_t r = rows; r < npq; ++r) qt[d * npq + r] = T(0);
      RowMap M(mv.data(), npq), Lsum(lv.data(), npq), Alpha(av.data(), npq);
      M.setConstant(neg_inf<T>());
      Lsum.setZero();
      bool first = true;
      for (size_t g = 0; g < group_end.size(); ++g) {
        const int64_t r0 = g ? group_end[g - 1] : 0, r1 = group_end[g];
        prefetch_group(g, vbh);
        if (g + 1 < group_end.size()) prefetch_group(g + 1, kbh);
        T* S = st.data();
        // Sᵀ of every run of the group, stacked: run r's keys at rows [off, off + key_count).
        int64_t cols = 0;
        bool any_masked = false;
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t k0 = first_key(runs[r]), n = key_count(runs[r]);
          tile_gemm<T>(n, npq, D, kbh + k0 * D, D, 1, qt.data(), npq, S + cols * npq, npq, false);
          if (p.run_needs_mask(qb, runs[r].b0, runs[r].b1)) {
            Eigen::Map<Mat<T>> St(S + cols * npq, n, npq);
            mask_scores_transposed(p, St, q0, k0);
            any_masked = true;
          }
          cols += n;
        }
        Alpha = M;  // old max
        for (int64_t c = 0; c < cols; ++c) M = M.max(RowMap(S + c * npq, npq));
        // Rescale factors exp(old − new), vectorised. A query whose new max is still −inf has
        // seen nothing: its l and acc row are exactly 0, so any finite factor will do (the
        // clamp to lowest() keeps −inf − (−inf) from making a NaN).
        Alpha = (Alpha - M.max(std::numeric_limits<T>::lowest())).exp();
        Lsum *= Alpha;
        for (int64_t c = 0; c < cols; ++c) {
          RowMap Sc(S + c * npq, npq);
          Sc = (Sc - M).exp();
          if (!any_masked) Lsum += Sc;  // unmasked: sum in the same pass
        }
        if (any_masked) {
          int64_t off = 0;
          for (int64_t r = r0; r < r1; ++r) {
            const int64_t k0 = first_key(runs[r]), n = key_count(runs[r]);
            const bool masked = p.run_needs_mask(qb, runs[r].b0, runs[r].b1);
            for (int64_t c = 0; c < n; ++c) {  // hidden: exactly 0 (also where M is −inf)
              T* Sc = S + (off + c) * npq;
              if (masked) {
                if (!p.key_last) {
                  const int64_t e = std::min<int64_t>(npq, std::max<int64_t>(0, k0 + c - q0));
                  std::fill(Sc, Sc + e, T(0));
                } else {
                  for (int64_t qr = 0; qr < rows; ++qr)
                    if (p.key_last[k0 + c] > q0 + qr) Sc[qr] = T(0);
                }
              }
              for (int64_t qr = rows; qr < npq; ++qr) Sc[qr] = T(0);
              Lsum += RowMap(Sc, npq);
            }
            off += n;
          }
        }
        if (!first)
          for (int64_t r = 0; r < rows; ++r)
            if (Alpha(r) != T(1)) Eigen::Map<Row>(acc.data() + r * D, D) *= Alpha(r);
        int64_t off = 0;
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t k0 = first_key(runs[r]), n = key_count(runs[r]);
          tile_gemm<T>(rows, D, n, S + off * npq, 1, npq, vbh + k0 * D, D, acc.data(), D, !first || r > r0);
          off += n;
        }
        first = false;
      }
      T* orow = o + (bh * p.Nq + q0) * D;
      T* lrow = lse + bh * p.Nq + q0;
      for (int64_t r = 0; r < rows; ++r) {
        Eigen::Map<Row> out(orow + r * D, D);
        if (!first && Lsum(r) > 0) {
          out = Eigen::Map<Row>(acc.data() + r * D, D) / Lsum(r);
          lrow[r] = M(r) + std::log(Lsum(r));
        } else {
          out.setZero();
          lrow[r] = neg_inf<T>();
        }
      }
    }
  }
}

// dK and dV of key block kb of (batch·head) bh, from every query run that reads it (the layout's
// transpose); with dq_head (that head's dQ rows), also adds each run's dQ share dS·(scale·K).
// One per thread: it owns its tiles.
template <class T>
struct KeyBlockGradsEigen {
  const Plan& p;
  const T *q, *k, *v, *dout, *lse_use, *di;
  T *dk, *dv;
  T scale;
  int64_t run;
  Mat<T> ks, st, dpt, dka, dva;
  std::vector<int32_t> buf;

  KeyBlockGradsEigen(const Plan& p_, const T* q_, const T* k_, const T* v_, const T* dout_, const T* lse_use_,
                     const T* di_, T* dk_, T* dv_, T scale_, int64_t run_)
      : p(p_),
        q(q_),
        k(k_),
        v(v_),
        dout(dout_),
        lse_use(lse_use_),
        di(di_),
        dk(dk_),
        dv(dv_),
        scale(scale_),
        run(run_),
        ks(p.bs, p.D),
        st(p.bs, run * p.bs),
        dpt(p.bs, run * p.bs),
        dka(p.bs, p.D),
        dva(p.bs, p.D) {}

  void operator()(int64_t bh, int64_t kb, T* dq_head) {
    const int64_t D = p.D, bs = p.bs, h = bh % p.H;
    const int64_t k0 = kb * bs, cols = p.k_cols(kb), key0 = bh * p.Nk + k0;
    auto Ks = ks.topRows(cols);
    Ks = CMap<T>(k + key0 * D, cols, D) * scale;
    const CMap<T> V(v + key0 * D, cols, D);
    auto dK = dka.topRows(cols), dV = dva.topRows(cols);
    dK.setZero();
    dV.setZero();
    const Span qs_of = queries_of(p, h, kb, buf);
    const auto usable = [&](int64_t qb) { return p.visible(qb, kb); };
    int64_t i = 0, qb0, qb1;
    while (next_run(qs_of, i, run, usable, qb0, qb1)) {
      const int64_t q0 = qb0 * bs, rows = std::min(qb1 * bs, p.Nq) - q0, row0 = bh * p.Nq + q0;
      const CMap<T> Q(q + row0 * D, rows, D), dO(dout + row0 * D, rows, D);
      const CRowMap<T> Lse(lse_use + row0, rows), Di(di + row0, rows);
      auto St = st.topLeftCorner(cols, rows);
      auto dPt = dpt.topLeftCorner(cols, rows);
      St.noalias() = Ks * Q.transpose();
      if (p.needs_mask(qb0, kb)) mask_scores_transposed(p, St, q0, k0);
      St = (St.array().rowwise() - Lse.array()).exp().matrix();  // Pᵀ
      zero_unseen_columns(St, Lse);
      dV.noalias() += St * dO;
      dPt.noalias() = V * dO.transpose();
      St.array() *= dPt.array().rowwise() - Di.array();  // dSᵀ
      dK.noalias() += St * Q;
      if (dq_head) Eigen::Map<Mat<T>>(dq_head + q0 * D, rows, D).noalias() += St.transpose() * Ks;
    }
    Eigen::Map<Mat<T>>(dk + key0 * D, cols, D) = dK * scale;
    Eigen::Map<Mat<T>>(dv + key0 * D, cols, D) = dV;
  }
};

// The same, on tile_gemm (D a multiple of the vector length). Tiles are oriented query rows ×
// key columns, as in the forward: S = Q·(scale·K)ᵀ and dP = dO·Vᵀ take (scale·K)ᵀ and Vᵀ packed
// once per key block (its columns padded to the vector length with zeros), so every product
// reads its right operand as contiguous rows and its left one in place:
//   dV += Pᵀ·dO, dK += dSᵀ·Q (P and dS read transposed), dQ += dS·(scale·K).
// The first query run writes dK/dV straight into the outputs; later runs add to them.
template <class T>
struct KeyBlockGrads {
  const Plan& p;
  const T *q, *k, *v, *dout, *lse_use, *di;
  T *dk, *dv;
  T scale;
  int64_t run, np_max;
  std::vector<T, Eigen::aligned_allocator<T>> ks, kst, vt, s, dp;  // 64-byte aligned: rows of np are whole vectors
  std::vector<int32_t> buf;
  std::vector<Run> runs;

  KeyBlockGrads(const Plan& p_, const T* q_, const T* k_, const T* v_, const T* dout_, const T* lse_use_, const T* di_,
                T* dk_, T* dv_, T scale_, int64_t run_)
      : p(p_),
        q(q_),
        k(k_),
        v(v_),
        dout(dout_),
        lse_use(lse_use_),
        di(di_),
        dk(dk_),
        dv(dv_),
        scale(scale_),
        run(run_),
        np_max((p.bs + simd_len<T>() - 1) / simd_len<T>() * simd_len<T>()),
        ks(p.bs * p.D),
        kst(p.D * np_max),
        vt(p.D * np_max),
        s(run * p.bs * np_max),
        dp(run * p.bs * np_max) {}

  void operator()(int64_t bh, int64_t kb, T* dq_head) {
    const int64_t D = p.D, bs = p.bs, h = bh % p.H;
    const int64_t k0 = kb * bs, cols = p.k_cols(kb), key0 = bh * p.Nk + k0;
    const int64_t np = (cols + simd_len<T>() - 1) / simd_len<T>() * simd_len<T>();  // padded key columns
    const T* K = k + key0 * D;
    const T* Vb = v + key0 * D;
    const Span qs_of = queries_of(p, h, kb, buf);
    const auto usable = [&](int64_t qb) { return p.visible(qb, kb); };
    runs_of(qs_of, run, usable, runs);
    // Q, dO, LSE and Di rows of query run r, prefetched one run ahead (the first before packing).
    const auto prefetch_run = [&](size_t r) {
      const int64_t q0 = runs[r].b0 * bs, rows = std::min(runs[r].b1 * bs, p.Nq) - q0, row0 = bh * p.Nq + q0;
      const int64_t bytes = rows * D * static_cast<int64_t>(sizeof(T));
      prefetch_l2(q + row0 * D, bytes);
      prefetch_l2(dout + row0 * D, bytes);
      prefetch_l2(lse_use + row0, rows * static_cast<int64_t>(sizeof(T)));
      prefetch_l2(di + row0, rows * static_cast<int64_t>(sizeof(T)));
    };
    if (!runs.empty()) prefetch_run(0);
    if (kb + 1 < p.nkb) {  // the next key block's K and V (the one-pass walk goes kb, kb + 1, ...)
      const int64_t bytes = p.k_cols(kb + 1) * D * static_cast<int64_t>(sizeof(T));
      prefetch_l2(K + cols * D, bytes);
      prefetch_l2(Vb + cols * D, bytes);
    }
    pack_transposed(K, cols, D, scale, kst.data(), np, ks.data());
    pack_transposed(Vb, cols, D, T(1), vt.data(), np);
    for (int64_t d = 0; d < D; ++d)
      for (int64_t c = cols; c < np; ++c) kst[d * np + c] = vt[d * np + c] = T(0);
    T* dK = dk + key0 * D;
    T* dV = dv + key0 * D;
    bool first = true;
    for (size_t ri = 0; ri < runs.size(); ++ri) {
      if (ri + 1 < runs.size()) prefetch_run(ri + 1);
      const int64_t qb0 = runs[ri].b0;
      const int64_t q0 = qb0 * bs, rows = std::min(runs[ri].b1 * bs, p.Nq) - q0, row0 = bh * p.Nq + q0;
      const T* Q = q + row0 * D;
      const T* dO = dout + row0 * D;
      const T* Lse = lse_use + row0;
      const T* Di = di + row0;
      T* S = s.data();
      T* dP = dp.data();
      tile_gemm<T>(rows, np, D, Q, D, 1, kst.data(), np, S, np, false);
      tile_gemm<T>(rows, np, D, dO, D, 1, vt.data(), np, dP, np, false);
      const bool masked = p.needs_mask(qb0, kb);
      for (int64_t r = 0; r < rows; ++r) {
        Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>> Pr(S + r * np, np), dSr(dP + r * np, np);
        if (Lse[r] == std::numeric_limits<T>::infinity()) {  // a row that saw nothing
          Pr.setZero();
          dSr.setZero();
          continue;
        }
        // Visible keys: [0, end) for plain keys; the padding [cols, np) never is. P is set to
        // exactly 0 where hidden (after the exp, so no −inf enters the vectorised exp).
        int64_t end = cols;
        if (masked && !p.key_last) end = std::clamp<int64_t>(q0 + r - k0 + 1, 0, cols);
        auto Pv = Pr.head(end);
        Pv = (Pv - Lse[r]).exp();
        Pr.tail(np - end).setZero();
        if (masked && p.key_last)
          for (int64_t c = 0; c < end; ++c)
            if (p.key_last[k0 + c] > q0 + r) Pr(c) = T(0);
        dSr = Pr * (dSr - Di[r]);
      }
      tile_gemm<T>(cols, D, rows, S, 1, np, dO, D, dV, D, !first);
      tile_gemm<T>(cols, D, rows, dP, 1, np, Q, D, dK, D, !first);
      if (dq_head) tile_gemm<T>(rows, D, cols, dP, np, 1, ks.data(), D, dq_head + q0 * D, D, true);
      first = false;
    }
    if (first) {
      std::fill(dK, dK + cols * D, T(0));
      std::fill(dV, dV + cols * D, T(0));
    } else {
      for (int64_t e = 0; e < cols * D; ++e) dK[e] *= scale;
    }
  }
};

// Pass 1 of the two-pass backward on tile_gemm: dQ for one query block per task, transposed as
// in forward_tiles_fast. (scale·Qi)ᵀ and dOiᵀ are packed once per task; per key run
//   Sᵀ = Kj·(scale·Qi)ᵀ, dPᵀ = Vj·dOiᵀ, dSᵀ = exp(Sᵀ − LSE) ∘ (dPᵀ − Di) (vectors of queries),
//   dQi += dS·Kj (dSᵀ read in place), and dQi·scale at the end.
// Hidden entries and queries that saw nothing are set to exactly 0 in dSᵀ after the exp.
template <class T>
void dq_by_query_blocks(const Plan& p, const T* q, const T* k, const T* v, const T* dout, const T* lse_use, const T* di,
                        T* dq, T scale, int64_t run) {
  const int64_t tasks = p.B * p.H * p.nqb, D = p.D, bs = p.bs, L = simd_len<T>();
  const int64_t npq_max = (bs + L - 1) / L * L;
  using Row = Eigen::Array<T, 1, Eigen::Dynamic>;
  using RowMap = Eigen::Map<Row>;
#pragma omp parallel
  {
    std::vector<T, Eigen::aligned_allocator<T>> qt(D * npq_max), dot(D * npq_max), st(run * bs * npq_max),
        dpt(run * bs * npq_max), lv(npq_max), dv(npq_max);
    std::vector<int32_t> buf;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t bh = t / p.nqb, qb = t % p.nqb, h = bh % p.H;
      const int64_t q0 = qb * bs, rows = p.q_rows(qb), npq = (rows + L - 1) / L * L, row0 = bh * p.Nq + q0;
      const T* kbh = k + bh * p.Nk * D;
      const T* vbh = v + bh * p.Nk * D;
      const T* Q = q + row0 * D;
      const T* dO = dout + row0 * D;
      for (int64_t r = 0; r < npq; ++r)
        for (int64_t d = 0; d < D; ++d) {
          qt[d * npq + r] = r < rows ? Q[r * D + d] * scale : T(0);
          dot[d * npq + r] = r < rows ? dO[r * D + d] : T(0);
        }
      bool unseen = false;
      for (int64_t r = 0; r < npq; ++r) {
        lv[r] = r < rows ? lse_use[row0 + r] : T(0);
        dv[r] = r < rows ? di[row0 + r] : T(0);
        unseen |= r < rows && lv[r] == std::numeric_limits<T>::infinity();
      }
      const RowMap Lse(lv.data(), npq), Di(dv.data(), npq);
      T* dQ = dq + row0 * D;
      bool first = true;
      const Span ks = keys_of(p, h, qb, buf);
      const auto usable = [&](int64_t kb) { return p.visible(qb, kb); };
      int64_t i = 0, kb0, kb1;
      while (next_run(ks, i, run, usable, kb0, kb1)) {
        const int64_t k0 = kb0 * bs, cols = std::min(kb1 * bs, p.Nk) - k0;
        T* S = st.data();
        T* dP = dpt.data();
        tile_gemm<T>(cols, npq, D, kbh + k0 * D, D, 1, qt.data(), npq, S, npq, false);
        tile_gemm<T>(cols, npq, D, vbh + k0 * D, D, 1, dot.data(), npq, dP, npq, false);
        const bool masked = p.run_needs_mask(qb, kb0, kb1);
        for (int64_t c = 0; c < cols; ++c) {
          RowMap Sc(S + c * npq, npq);
          Sc = (Sc - Lse).exp() * (RowMap(dP + c * npq, npq) - Di);  // dSᵀ
          if (masked) {
            if (!p.key_last) {
              const int64_t n = std::min<int64_t>(rows, std::max<int64_t>(0, k0 + c - q0));
              std::fill(S + c * npq, S + c * npq + n, T(0));
            } else {
              for (int64_t r = 0; r < rows; ++r)
                if (p.key_last[k0 + c] > q0 + r) Sc(r) = T(0);
            }
          }
          if (unseen)
            for (int64_t r = 0; r < rows; ++r)
              if (Lse(r) == std::numeric_limits<T>::infinity()) Sc(r) = T(0);
        }
        tile_gemm<T>(rows, D, cols, S, 1, npq, kbh + k0 * D, D, dQ, D, !first);
        first = false;
      }
      if (first)
        std::fill(dQ, dQ + rows * D, T(0));
      else
        for (int64_t e = 0; e < rows * D; ++e) dQ[e] *= scale;
    }
  }
}

template <class T>
void backward_tiles(const Plan& p, const T* q, const T* k, const T* v, const T* o, const T* lse, const T* dout, T* dq,
                    T* dk, T* dv) {
  const int64_t D = p.D, bs = p.bs, nrows = p.B * p.H * p.Nq;
  // Di = rowsum(dO ∘ O), and the LSE to subtract: +inf on rows that saw nothing, so that
  // P = exp(S − LSE) is 0 there (S is finite or −inf) and such rows pass no gradient.
  std::vector<T> di(nrows), lse_use(nrows);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < nrows; ++i) {
    di[i] = Eigen::Map<const Vec<T>>(dout + i * D, D).dot(Eigen::Map<const Vec<T>>(o + i * D, D));
    lse_use[i] = lse[i] == neg_inf<T>() ? std::numeric_limits<T>::infinity() : lse[i];
  }
  const T scale = static_cast<T>(p.scale);
  const int64_t run = run_blocks(bs);
  const bool fast = D % simd_len<T>() == 0;  // tile_gemm needs whole vectors of D

  // One pass when there are at least as many (batch·head) tasks as threads: a task owns its head's
  // dQ as well as each key block's dK/dV, so P is recomputed once and a tile pair costs five
  // products (S, dV, dP, dK, dQ) instead of the two-pass scheme's seven. With fewer heads than
  // threads the two passes below keep every thread busy instead.
  if (p.B * p.H >= static_cast<int64_t>(omp_get_max_threads())) {
#pragma omp parallel
    {
      auto one_pass = [&](auto& grads) {
#pragma omp for schedule(dynamic, 1)
        for (int64_t bh = 0; bh < p.B * p.H; ++bh) {
          T* dq_head = dq + bh * p.Nq * D;
          Eigen::Map<Mat<T>>(dq_head, p.Nq, D).setZero();
          for (int64_t kb = 0; kb < p.nkb; ++kb) grads(bh, kb, dq_head);
        }
      };
      if (fast) {
        KeyBlockGrads<T> grads(p, q, k, v, dout, lse_use.data(), di.data(), dk, dv, scale, run);
        one_pass(grads);
      } else {
        KeyBlockGradsEigen<T> grads(p, q, k, v, dout, lse_use.data(), di.data(), dk, dv, scale, run);
        one_pass(grads);
      }
    }
    return;
  }

  // Pass 1: dQ, one task per (batch·head, query block).
  const int64_t qtasks = p.B * p.H * p.nqb;
  if (fast) {
    dq_by_query_blocks(p, q, k, v, dout, lse_use.data(), di.data(), dq, scale, run);
  } else {
#pragma omp parallel
    {
      Mat<T> qs(bs, D), s(bs, run * bs), dp(bs, run * bs), dqa(bs, D);
      std::vector<int32_t> buf;
#pragma omp for schedule(dynamic, 1)
      for (int64_t t = 0; t < qtasks; ++t) {
        const int64_t bh = t / p.nqb, qb = t % p.nqb, h = bh % p.H;
        const int64_t q0 = qb * bs, rows = p.q_rows(qb), row0 = bh * p.Nq + q0;
        const T* kbh = k + bh * p.Nk * D;
        const T* vbh = v + bh * p.Nk * D;
        auto Qs = qs.topRows(rows);
        Qs = CMap<T>(q + row0 * D, rows, D) * scale;
        const CMap<T> dO(dout + row0 * D, rows, D);
        const Eigen::Map<const Vec<T>> Lse(lse_use.data() + row0, rows), Di(di.data() + row0, rows);
        auto dQ = dqa.topRows(rows);
        dQ.setZero();
        const Span ks = keys_of(p, h, qb, buf);
        const auto usable = [&](int64_t kb) { return p.visible(qb, kb); };
        int64_t i = 0, kb0, kb1;
        while (next_run(ks, i, run, usable, kb0, kb1)) {
          const int64_t k0 = kb0 * bs, cols = std::min(kb1 * bs, p.Nk) - k0;
          const CMap<T> K(kbh + k0 * D, cols, D), V(vbh + k0 * D, cols, D);
          auto S = s.topLeftCorner(rows, cols);
          auto dP = dp.topLeftCorner(rows, cols);
          S.noalias() = Qs * K.transpose();
          if (p.run_needs_mask(qb, kb0, kb1)) mask_scores(p, S, q0, k0);
          dP.noalias() = dO * V.transpose();
          for (int64_t r = 0; r < rows; ++r) {  // contiguous rows: vectorised exp
            auto Sr = S.row(r);
            if (Lse(r) == std::numeric_limits<T>::infinity()) {  // a row that saw nothing
              Sr.setZero();
              continue;
            }
            Sr = (Sr.array() - Lse(r)).exp().matrix();  // P
            Sr.array() *= dP.row(r).array() - Di(r);    // dS
          }
          dQ.noalias() += S * K;
        }
        Eigen::Map<Mat<T>>(dq + row0 * D, rows, D) = dQ * scale;
      }
    }
  }

  // Pass 2: dK and dV, one task per (batch·head, key block), over the query blocks reading it.
  const int64_t ktasks = p.B * p.H * p.nkb;
#pragma omp parallel
  {
    auto two_pass = [&](auto& grads) {
#pragma omp for schedule(dynamic, 1)
      for (int64_t t = 0; t < ktasks; ++t) grads(t / p.nkb, t % p.nkb, nullptr);
    };
    if (fast) {
      KeyBlockGrads<T> grads(p, q, k, v, dout, lse_use.data(), di.data(), dk, dv, scale, run);
      two_pass(grads);
    } else {
      KeyBlockGradsEigen<T> grads(p, q, k, v, dout, lse_use.data(), di.data(), dk, dv, scale, run);
      two_pass(grads);
    }
  }
}

// The kernel's working copy of t: contiguous, in dtype ct (bf16 widens to f32).
Tensor as_compute(const Tensor& t, DType ct) {
  if (t.dtype() == ct && t.is_contiguous()) return t;
  Tensor c = empty(t.shape(), ct, Device::cpu());
  copy_(c, t);
  return c;
}

DType compute_dtype(DType t) { return t == DType::F64 ? DType::F64 : DType::F32; }

}  // namespace

BlockAttentionForward block_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                              const BlockAttentionArgs& args) {
  const Plan p = make_plan(q, k, args);
  const DType ct = compute_dtype(q.dtype());
  const Tensor qc = as_compute(q, ct), kc = as_compute(k, ct), vc = as_compute(v, ct);
  BlockAttentionForward f{empty(q.shape(), ct), empty({p.B, p.H, p.Nq}, ct)};
  if (ct == DType::F64) {
    if (p.D % simd_len<double>() == 0)
      forward_tiles_fast<double>(p, qc.data<double>(), kc.data<double>(), vc.data<double>(), f.out.data<double>(),
                                 f.lse.data<double>());
    else
      forward_tiles<double>(p, qc.data<double>(), kc.data<double>(), vc.data<double>(), f.out.data<double>(),
                            f.lse.data<double>());
  } else {
    if (p.D % simd_len<float>() == 0)
      forward_tiles_fast<float>(p, qc.data<float>(), kc.data<float>(), vc.data<float>(), f.out.data<float>(),
                                f.lse.data<float>());
    else
      forward_tiles<float>(p, qc.data<float>(), kc.data<float>(), vc.data<float>(), f.out.data<float>(),
                           f.lse.data<float>());
  }
  return f;
}

BlockAttentionGrads block_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                             const Tensor& lse, const Tensor& dout, const BlockAttentionArgs& args) {
  const Plan p = make_plan(q, k, args);
  const DType ct = compute_dtype(q.dtype());
  const Tensor qc = as_compute(q, ct), kc = as_compute(k, ct), vc = as_compute(v, ct);
  const Tensor oc = as_compute(out, ct), lc = as_compute(lse, ct), dc = as_compute(dout, ct);
  // Gradients in one buffer where q, k, v agree in shape and dtype: q, k, v sliced from one tensor
  // then get its gradient with no copy (empty_adjacent).
  const bool in_compute = q.dtype() == ct;
  std::vector<Tensor> d = in_compute
                              ? empty_adjacent({q, k, v})
                              : std::vector<Tensor>{empty(q.shape(), ct), empty(k.shape(), ct), empty(v.shape(), ct)};
  Tensor dq = d[0], dk = d[1], dv = d[2];
  if (ct == DType::F64)
    backward_tiles<double>(p, qc.data<double>(), kc.data<double>(), vc.data<double>(), oc.data<double>(),
                           lc.data<double>(), dc.data<double>(), dq.data<double>(), dk.data<double>(),
                           dv.data<double>());
  else
    backward_tiles<float>(p, qc.data<float>(), kc.data<float>(), vc.data<float>(), oc.data<float>(), lc.data<float>(),
                          dc.data<float>(), dq.data<float>(), dk.data<float>(), dv.data<float>());
  if (in_compute) return {dq, dk, dv};
  // bf16 inputs: gradients computed in f32, rounded to bf16 on store.
  const std::vector<Tensor> r = empty_adjacent({q, k, v});
  BlockAttentionGrads g{r[0], r[1], r[2]};
  copy_(g.dq, dq);
  copy_(g.dk, dk);
  copy_(g.dv, dv);
  return g;
}

}  // namespace sparrow::attn::cpu
