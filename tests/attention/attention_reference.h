// Test helpers for attention: a slow, explicit dense attention in f64 over the masked N×N
// scores (forward and the three gradients of Σ O∘W), and hand-built block layouts.
#pragma once
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "attention/layout/block_layout.h"
#include "framework/core/rng.h"
#include "framework/core/tensor.h"

namespace sparrow::testing {

// visible(h, i, j): may query i of head h see key j.
using Visible = std::function<bool(int64_t h, int64_t i, int64_t j)>;

struct AttentionReference {
  std::vector<double> o, dq, dk, dv;
};

// q [B,H,Nq,D], k/v [B,H,Nk,D], w [B,H,Nq,D] (the weight of the loss Σ O∘W), any dtype.
// P = softmax over the visible keys of each row (a row that sees nothing: P = 0, O = 0);
// dV = Pᵀ W, dS = P ∘ (W Vᵀ − rowsum(P ∘ W Vᵀ)), dQ = scale·dS K, dK = scale·dSᵀ Q.
inline AttentionReference reference_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& w,
                                              double scale, const Visible& visible) {
  const int64_t B = q.size(0), H = q.size(1), Nq = q.size(2), Nk = k.size(2), D = q.size(3);
  const std::vector<double> Q = q.to_vector(), K = k.to_vector(), V = v.to_vector(), W = w.to_vector();
  AttentionReference r;
  r.o.assign(Q.size(), 0);
  r.dq.assign(Q.size(), 0);
  r.dk.assign(K.size(), 0);
  r.dv.assign(V.size(), 0);
  std::vector<double> P(Nk), dP(Nk);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t qo = (b * H + h) * Nq * D, ko = (b * H + h) * Nk * D;
      for (int64_t i = 0; i < Nq; ++i) {
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < Nk; ++j) {
          if (!visible(h, i, j)) {
            P[j] = -std::numeric_limits<double>::infinity();
            continue;
          }
          double s = 0;
          for (int64_t d = 0; d < D; ++d) s += Q[qo + i * D + d] * K[ko + j * D + d];
          P[j] = s * scale;
          mx = std::max(mx, P[j]);
        }
        if (mx == -std::numeric_limits<double>::infinity()) continue;  // sees nothing: O = 0, no gradient
        double sum = 0;
        for (int64_t j = 0; j < Nk; ++j) sum += P[j] = std::exp(P[j] - mx);
        for (int64_t j = 0; j < Nk; ++j) P[j] /= sum;
        double di = 0;
        for (int64_t j = 0; j < Nk; ++j) {
          dP[j] = 0;
          for (int64_t d = 0; d < D; ++d) {
            r.o[qo + i * D + d] += P[j] * V[ko + j * D + d];
            dP[j] += W[qo + i * D + d] * V[ko + j * D + d];
            r.dv[ko + j * D + d] += P[j] * W[qo + i * D + d];
          }
          di += P[j] * dP[j];
        }
        for (int64_t j = 0; j < Nk; ++j) {
          const double ds = P[j] * (dP[j] - di);
          for (int64_t d = 0; d < D; ++d) {
            r.dq[qo + i * D + d] += scale * ds * K[ko + j * D + d];
            r.dk[ko + j * D + d] += scale * ds * Q[qo + i * D + d];
          }
        }
      }
    }
  return r;
}

// max |a − b| / max |b|.
inline double rel_error(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num = std::max(num, std::abs(a[i] - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  return a.size() == b.size() ? num / std::max(den, 1e-300) : std::numeric_limits<double>::infinity();
}

// ‖a − b‖₂ / ‖b‖₂ over all elements: for bf16 results, whose every element rounds to 2⁻⁸.
inline double norm_rel_error(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}

// A CSR (with transpose) where pair (qb, kb) is active with probability `keep` (seeded).
inline attn::BlockCSR random_csr(int64_t nqb, int64_t nkb, double keep, uint64_t seed) {
  Generator g(seed);
  attn::BlockCSR c;
  c.row_ptr.push_back(0);
  for (int64_t i = 0; i < nqb; ++i) {
    for (int64_t j = 0; j < nkb; ++j)
      if (g.uniform() < keep) c.col_idx.push_back(static_cast<int32_t>(j));
    c.row_ptr.push_back(static_cast<int64_t>(c.col_idx.size()));
  }
  c.build_transpose(nkb);
  return c;
}

// Is pair (qb, kb) in the CSR?
inline bool csr_has(const attn::BlockCSR& c, int64_t qb, int64_t kb) {
  for (int64_t e = c.row_ptr[qb]; e < c.row_ptr[qb + 1]; ++e)
    if (c.col_idx[e] == kb) return true;
  return false;
}

}  // namespace sparrow::testing
