// Sampling in f64: candidates ordered by logit (ties: lower index first), the top_k kept,
// p_i = exp((l_i − l_max)/T) / Σ, then the first candidate whose cumulative p exceeds u ~ U[0, 1).
#include "train/sample/token_choice.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "framework/core/error.h"

namespace sparrow::train {

void check_sampling_options(const SamplingOptions& o) {
  SPARROW_CHECK(std::isfinite(o.temperature) && o.temperature >= 0, "temperature ", o.temperature,
                " (must be ≥ 0; 0 is greedy)");
  SPARROW_CHECK(o.top_k >= 0, "top-k ", o.top_k, " (must be ≥ 0; 0 keeps every token)");
}

int64_t choose_token(const std::vector<float>& logits, const SamplingOptions& o, Generator& gen) {
  check_sampling_options(o);
  SPARROW_CHECK(!logits.empty(), "choose_token: no logits");
  for (float l : logits) SPARROW_CHECK(std::isfinite(l), "choose_token: a non-finite logit (", l, ")");
  const auto better = [&](int64_t a, int64_t b) {
    return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
  };
  const int64_t V = static_cast<int64_t>(logits.size());
  if (o.temperature == 0) {
    int64_t best = 0;
    for (int64_t i = 1; i < V; ++i)
      if (better(i, best)) best = i;
    return best;
  }
  const int64_t k = o.top_k == 0 ? V : std::min(o.top_k, V);
  std::vector<int64_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), better);
  const double top = logits[size_t(order[0])];
  std::vector<double> p(static_cast<size_t>(k));
  double total = 0;
  for (int64_t i = 0; i < k; ++i)
    total += p[size_t(i)] = std::exp((logits[size_t(order[size_t(i)])] - top) / o.temperature);
  const double u = gen.uniform() * total;
  double run = 0;
  for (int64_t i = 0; i < k; ++i) {
    run += p[size_t(i)];
    if (u < run) return order[size_t(i)];
  }
  return order[size_t(k - 1)];  // u·total at the rounding edge of the sum
}

}  // namespace sparrow::train
