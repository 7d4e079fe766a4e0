// CPU decode attention: per (batch, head) and query row p, gather the keys p sees (layout row of
// p's block, then key_last ≤ p per key), score them, and take one softmax in f64:
//   s_j = scale·q·k_j;  m = max s;  O = Σ exp(s_j − m)·v_j / Σ exp(s_j − m).
// A handful of rows against the cache: the work is O(visible keys · D) per row, the same keys
// the forward's block kernel reads for that row, and no tile of other queries.
#include "attention/kernels/cpu/decode_attention.h"

#include <omp.h>
#include <algorithm>
#include <cmath>
#include <limits>

namespace sparrow::attn::cpu {
namespace {

// Element (b, h, n, 0) of a [B, H, N, D] view whose last dimension is contiguous.
template <class T>
struct Rows {
  const T* base;
  int64_t sb, sh, sn;
  const T* at(int64_t b, int64_t h, int64_t n) const { return base + b * sb + h * sh + n * sn; }
};

template <class T>
Rows<T> rows_of(const Tensor& t) {
  return {t.data<T>(), t.strides()[0], t.strides()[1], t.strides()[2]};
}

// A view whose rows are contiguous (the cache's slices are); otherwise a contiguous copy.
Tensor with_contiguous_rows(const Tensor& t) { return t.strides()[3] == 1 ? t : t.contiguous(); }

template <class T>
Tensor run(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const DecodeAttentionArgs& a) {
  const Tensor q = with_contiguous_rows(q_in), k = with_contiguous_rows(k_in), v = with_contiguous_rows(v_in);
  const int64_t B = q.size(0), H = q.size(1), T_ = q.size(2), D = q.size(3), Nk = k.size(2);
  const int64_t bs = a.block_size, nkb = (Nk + bs - 1) / bs;
  Tensor out = zeros({B, H, T_, D}, q.dtype());
  T* o = out.data<T>();
  const Rows<T> Q = rows_of<T>(q), K = rows_of<T>(k), V = rows_of<T>(v);
  const BlockLayout* L = a.layout;
  const int64_t nh = L ? static_cast<int64_t>(L->heads.size()) : 0;

#pragma omp parallel for schedule(static) if (B * H > 1)
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    const BlockCSR* csr = !L        ? nullptr
                          : nh == 1 ? &L->heads[0]
                          : nh == H ? &L->heads[size_t(h)]
                                    : &L->heads[size_t(bh)];
    std::vector<int64_t> keys;
    std::vector<double> s, acc(static_cast<size_t>(D));
    for (int64_t i = 0; i < T_; ++i) {
      const int64_t p = a.first + i, row = p / bs;
      keys.clear();
      const auto add_block = [&](int64_t c) {
        for (int64_t j = c * bs; j < std::min(Nk, (c + 1) * bs); ++j)
          if ((a.key_last.empty() ? j : a.key_last[size_t(j)]) <= p) keys.push_back(j);
      };
      if (csr) {
        for (int64_t e = csr->row_ptr[size_t(row)]; e < csr->row_ptr[size_t(row) + 1]; ++e)
          if (csr->col_idx[size_t(e)] < nkb) add_block(csr->col_idx[size_t(e)]);
      } else {
        for (int64_t c = 0; c < nkb; ++c) add_block(c);
      }
      if (keys.empty()) continue;  // O = 0, as block_attention gives a row that sees nothing
      const T* qp = Q.at(b, h, i);
      s.resize(keys.size());
      double m = -std::numeric_limits<double>::infinity();
      for (size_t e = 0; e < keys.size(); ++e) {
        const T* kp = K.at(b, h, keys[e]);
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += static_cast<double>(qp[d]) * static_cast<double>(kp[d]);
        s[e] = a.scale * dot;
        m = std::max(m, s[e]);
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      double l = 0;
      for (size_t e = 0; e < keys.size(); ++e) {
        const double w = std::exp(s[e] - m);
        l += w;
        const T* vp = V.at(b, h, keys[e]);
        for (int64_t d = 0; d < D; ++d) acc[size_t(d)] += w * static_cast<double>(vp[d]);
      }
      T* op = o + ((b * H + h) * T_ + i) * D;
      for (int64_t d = 0; d < D; ++d) op[d] = static_cast<T>(acc[size_t(d)] / l);
    }
  }
  return out;
}

}  // namespace

Tensor decode_attention(const Tensor& q, const Tensor& k, const Tensor& v, const DecodeAttentionArgs& args) {
  return q.dtype() == DType::F64 ? run<double>(q, k, v, args) : run<float>(q, k, v, args);
}

}  // namespace sparrow::attn::cpu
