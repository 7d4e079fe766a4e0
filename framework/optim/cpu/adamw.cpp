#include "framework/optim/cpu/adamw.h"

#include <cmath>

namespace sparrow::cpu {

void adamw_step(float* p, const float* g, float* m, float* v, bf16* copy, const optim::AdamWKernelArgs& a) {
  const optim::AdamWStepScalars s = *a.s;
  const float clip = optim::adamw_guard_factor(a, s);
  if (clip < 0) return;  // the guard skips this step
  const float decay = 1.0f - s.lr * a.weight_decay;
  const float b1 = a.beta1, b2 = a.beta2, c1 = 1.0f - a.beta1, c2 = 1.0f - a.beta2;
#pragma omp parallel for schedule(static) if (a.n > (1 << 16))
  for (int64_t i = 0; i < a.n; ++i) {
    float pi = i < a.decay_end ? p[i] * decay : p[i];
    const float gi = clip == 1.0f ? g[i] : g[i] * clip;
    const float mi = b1 * m[i] + c1 * gi;
    const float vi = b2 * v[i] + c2 * gi * gi;
    pi -= s.step_size * mi / (std::sqrt(vi) * s.inv_sqrt_bc2 + a.eps);
    m[i] = mi;
    v[i] = vi;
    p[i] = pi;
    if (copy) copy[i] = bf16(pi);
  }
}

}  // namespace sparrow::cpu
