#include "attention/kernels/cudnn_attention.h"

#include <cmath>

#include "attention/kernels/cuda/cudnn_sdpa.h"
#include "framework/autograd/node.h"

namespace sparrow::attn {

Tensor cudnn_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale) {
#ifndef SPARROW_WITH_CUDA  // a CUDA-only op (cuDNN has no CPU kernel): one clear error before any check
  (void)q, (void)k, (void)v, (void)causal, (void)scale;
  fail("cudnn_attention: this build has no CUDA (configure with SPARROW_CUDA=ON on a machine with nvcc)");
#else
  check_dim("cudnn_attention", q, 4);
  SPARROW_CHECK(scale >= 0, "cudnn_attention: scale ", scale, " (0 means 1/sqrt(D))");
  const double s = scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  // History-free contiguous rows, made once and shared by forward and backward (the node's
  // edges go to q, k, v themselves).
  auto rows = [](const Tensor& t) {
    if (t.is_contiguous()) return t.detach();
    Tensor c = empty(t.shape(), t.dtype(), t.device());
    copy_(c, t);
    return c;
  };
  const Tensor qc = rows(q), kc = rows(k), vc = rows(v);
  BlockAttentionForward f = cuda::cudnn_sdpa_forward(qc, kc, vc, causal, s);
  if (!needs_grad({&q, &k, &v})) return f.out;
  Tensor out_saved = f.out.detach(), lse = f.lse;
  return record(f.out, "cudnn_attention", {q, k, v}, [=](const Tensor& g) -> std::vector<Tensor> {
    BlockAttentionGrads gr = cuda::cudnn_sdpa_backward(qc, kc, vc, out_saved, lse, g, causal, s);
    return {gr.dq, gr.dk, gr.dv};
  });
#endif
}

}  // namespace sparrow::attn
