// Hierarchical decode: the geometry and layout of the model's length seq_len, as the forward
// builds them (prepare), and the keys/values K' = [fine | level-1 summaries | …] in the forward's
// arrangement, built from the cache for queries at positions < n = first + T:
//   - fine rows [0, n) copied;
//   - at level l, summary t (the mean of fine rows [t·P^l, min(N, (t+1)·P^l)), as with_summaries
//     defines it) for every group that ends inside [0, n).
// Everything else in K' stays zero and is never read: a key's key_last is the last position it
// covers, so a fine row ≥ n or a group reaching past n − 1 is invisible to every query here.
// So each query sees exactly the forward's keys, through the forward's layout row. Built in one
// pass over the cache (O(n·D·levels) a call) rather than with_summaries over the whole padded
// length, whose framework ops dominated a decode step.
#include "attention/backends/hierarchical.h"

#include <algorithm>

#include "attention/kernels/decode_attention.h"

namespace sparrow::attn {
namespace {

template <class T>
Tensor summarised(const Tensor& cache, int64_t n, const HierarchicalGeometry& g) {
  const int64_t B = cache.size(0), H = cache.size(1), D = cache.size(3), bs = g.block_size;
  const Tensor src = cache.strides()[3] == 1 ? cache : cache.contiguous();
  const int64_t sb = src.strides()[0], sh = src.strides()[1], sn = src.strides()[2];
  Tensor out = zeros({B, H, g.key_len, D}, cache.dtype());
  T* o = out.data<T>();
  const T* x = src.data<T>();
  std::vector<double> acc(static_cast<size_t>(D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const T* in = x + b * sb + h * sh;
      T* head = o + (b * H + h) * g.key_len * D;
      for (int64_t j = 0; j < n; ++j) std::copy(in + j * sn, in + j * sn + D, head + j * D);
      for (int64_t l = 1; l <= g.levels; ++l) {
        const int64_t grp = g.group[size_t(l)], k0 = g.first_block[size_t(l)] * bs;
        for (int64_t t = 0; t < g.tokens[size_t(l)]; ++t) {
          const int64_t lo = t * grp, hi = std::min(g.seq_len, lo + grp);
          if (hi > n) break;
          std::fill(acc.begin(), acc.end(), 0.0);
          for (int64_t j = lo; j < hi; ++j)
            for (int64_t d = 0; d < D; ++d) acc[size_t(d)] += static_cast<double>(in[j * sn + d]);
          T* row = head + (k0 + t) * D;
          for (int64_t d = 0; d < D; ++d) row[d] = static_cast<T>(acc[size_t(d)] / static_cast<double>(hi - lo));
        }
      }
    }
  return out;
}

Tensor summarised(const Tensor& cache, int64_t n, const HierarchicalGeometry& g) {
  SPARROW_CHECK(cache.dtype() == DType::F32 || cache.dtype() == DType::F64, "hierarchical attention decode: dtype ",
                dtype_name(cache.dtype()), " (decode computes in f32 or f64)");
  SPARROW_CHECK(!cache.is_cuda(),
                "hierarchical attention decode: the KV-cache decode runs on the CPU only (the cache is ",
                describe(cache), ")");
  return cache.dtype() == DType::F64 ? summarised<double>(cache.detach(), n, g)
                                     : summarised<float>(cache.detach(), n, g);
}

}  // namespace

Tensor HierarchicalAttention::decode(const DecodeCall& call) {
  check_decode_call("hierarchical attention", call);
  prepare(call.seq_len, /*causal=*/true);
  const int64_t n = call.first + call.q.size(2);
  DecodeAttentionArgs args;
  args.layout = layout_.get();
  args.scale = cfg_.softmax_scale;
  args.key_last = key_last_;
  args.first = call.first;
  return decode_attention(call.q, summarised(call.k, n, geo_), summarised(call.v, n, geo_), args);
}

}  // namespace sparrow::attn
