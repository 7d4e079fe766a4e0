// Sparrow's attention layer alone, on the caller's own tensors: block_sparse attention at 95%
// sparsity (BigBird pattern), forward and backward, checked against dense attention with the
// same block mask written out by hand from the layout. Prints the density and a checksum; exits
// non-zero when the outputs or gradients disagree, or a gradient is not finite or all zero.
#include <cmath>
#include <cstdio>
#include <exception>
#include <vector>

#include "attention/attention.h"
#include "attention/layout/block_layout.h"
#include "framework/core/rng.h"
#include "framework/ops/ops.h"

using namespace sparrow;

namespace {

double max_rel_error(const Tensor& got, const Tensor& want) {
  const std::vector<double> a = got.to_vector(), b = want.to_vector();
  double err = 0, scale = 1e-6;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return err / scale;
}

bool finite_and_nonzero(const Tensor& t) {
  bool nonzero = false;
  for (double x : t.to_vector()) {
    if (!std::isfinite(x)) return false;
    nonzero = nonzero || x != 0;
  }
  return nonzero;
}

int run() {
  const int64_t B = 1, H = 2, N = 2048, D = 32;
  attn::AttentionConfig cfg;
  cfg.backend = "block_sparse";
  cfg.block_size = 16;  // 128 blocks a side: room for 95% sparsity beside the diagonal
  cfg.sparsity = 0.95;
  cfg.pattern.names = {"bigbird"};
  std::unique_ptr<attn::Attention> attention = attn::make_attention(cfg);

  // The caller's tensors: [B, H, N, D] leaves that want gradients.
  Generator gen(42);
  Tensor q = randn({B, H, N, D}, gen).requires_grad_();
  Tensor k = randn({B, H, N, D}, gen).requires_grad_();
  Tensor v = randn({B, H, N, D}, gen).requires_grad_();
  Tensor w = randn({B, H, N, D}, gen);  // a fixed upstream gradient

  attn::AttentionCall call{q, k, v, /*causal=*/true, /*step=*/0};
  Tensor out = attention->forward(call);
  out.backward(w);
  const attn::AttentionStats stats = attention->stats();

  // The reference: dense softmax(q kᵀ / √D + mask) v, the mask being -1e9 wherever the layout has
  // no block or the key is in the future.
  auto layout = attn::get_layout(cfg, N, H, /*causal=*/true);
  std::vector<float> mask(static_cast<size_t>(B * H * N * N), -1e9f);
  for (int64_t h = 0; h < H; ++h) {
    const attn::BlockCSR& csr = layout->head(h);
    for (int64_t r = 0; r < layout->num_q_blocks; ++r)
      for (int64_t p = csr.row_ptr[r]; p < csr.row_ptr[r + 1]; ++p)
        for (int64_t i = r * cfg.block_size; i < std::min(N, (r + 1) * cfg.block_size); ++i)
          for (int64_t j = csr.col_idx[p] * cfg.block_size; j < std::min(N, (csr.col_idx[p] + 1) * cfg.block_size); ++j)
            if (j <= i) mask[static_cast<size_t>((h * N + i) * N + j)] = 0.0f;
  }
  Tensor qr = q.detach().requires_grad_(), kr = k.detach().requires_grad_(), vr = v.detach().requires_grad_();
  Tensor scores = matmul(qr, kr, false, true) * (1.0 / std::sqrt(double(D))) + from_vector(mask, {B, H, N, N});
  Tensor ref = matmul(softmax(scores, -1), vr);
  ref.backward(w);

  const double e_out = max_rel_error(out, ref), e_dq = max_rel_error(q.grad(), qr.grad()),
               e_dk = max_rel_error(k.grad(), kr.grad()), e_dv = max_rel_error(v.grad(), vr.grad());
  const double checksum = sum(out).item();
  std::printf("attention_alone: %s, N %lld, block %lld: density %.4f (target sparsity %.2f), %lld active blocks\n",
              stats.backend.c_str(), static_cast<long long>(N), static_cast<long long>(cfg.block_size), stats.density,
              stats.target_sparsity, static_cast<long long>(stats.active_blocks));
  std::printf("attention_alone: checksum %.6f; max relative error vs dense+mask: out %.2e, dq %.2e, dk %.2e, dv %.2e\n",
              checksum, e_out, e_dq, e_dk, e_dv);

  bool ok = true;
  auto expect = [&](bool cond, const char* what) {
    if (!cond) std::fprintf(stderr, "attention_alone: FAILED: %s\n", what);
    ok = ok && cond;
  };
  expect(stats.density > 0 && stats.density < 0.08, "density near 5%");
  expect(std::isfinite(checksum), "finite output");
  expect(e_out < 1e-4 && e_dq < 1e-4 && e_dk < 1e-4 && e_dv < 1e-4, "equal to dense attention with the mask");
  expect(finite_and_nonzero(q.grad()) && finite_and_nonzero(k.grad()) && finite_and_nonzero(v.grad()),
         "gradients finite and non-zero");
  return ok ? 0 : 1;
}

}  // namespace

int main() {
  try {
    return run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attention_alone: %s\n", e.what());
    return 1;
  }
}
