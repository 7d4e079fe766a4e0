#include "train/eval/retrieval_accuracy.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "framework/autograd/node.h"
#include "framework/ops/ops.h"
#include "train/eval/position_loss.h"

namespace sparrow::train {
namespace {

double ratio(int64_t a, int64_t b) {
  return b ? static_cast<double>(a) / static_cast<double>(b) : std::numeric_limits<double>::quiet_NaN();
}

bool is_key_byte(int32_t c) { return c >= 'A' && c <= 'Z'; }

}  // namespace

double DistanceBucket::accuracy() const { return ratio(queries_right, queries); }
double DistanceBucket::byte_accuracy() const { return ratio(bytes_right, bytes); }

std::vector<SyntheticQuery> find_queries(const SyntheticConfig& cfg, const SyntheticExample& ex) {
  const std::vector<int32_t>& x = ex.tokens;
  const int64_t n = static_cast<int64_t>(x.size()), K = cfg.key_len, V = cfg.value_len;
  std::vector<SyntheticQuery> out;
  auto value_targets = [&](int64_t q) {  // the value bytes follow '?' and the key
    std::vector<int64_t> t;
    for (int64_t i = 0; i < V; ++i) t.push_back(q + 1 + K + i - 1);
    return t;
  };
  if (cfg.task == "needle") {
    // One '#' and one '?' per example: the filler, keys and values never hold either.
    const auto q = std::find(x.begin(), x.end(), '?'), p = std::find(x.begin(), x.end(), '#');
    SPARROW_CHECK(q != x.end() && p != x.end() && p < q, "eval: a needle example without its '#' before its '?'");
    out.push_back({q - p, value_targets(q - x.begin())});
    return out;
  }
  // recall: the listing ends where the first query starts; a key there is K capitals not preceded
  // by a capital (pairs are key, value, key, value, …: a digit or filler precedes each key).
  const int64_t first_q = std::find(x.begin(), x.end(), '?') - x.begin();
  for (int64_t q = first_q; q < n; ++q) {
    if (x[q] != '?') continue;
    int64_t at = -1;
    for (int64_t i = 0; i + K <= first_q && at < 0; ++i)
      if ((i == 0 || !is_key_byte(x[i - 1])) && std::equal(x.begin() + i, x.begin() + i + K, x.begin() + q + 1)) at = i;
    SPARROW_CHECK(at >= 0, "eval: a recall query at ", q, " whose key is not in the listing");
    out.push_back({q - at, value_targets(q)});
  }
  return out;
}

RetrievalAccuracy::RetrievalAccuracy(const SyntheticConfig& cfg, int64_t seq_len, int64_t first_bucket)
    : cfg_(cfg), seq_len_(seq_len) {
  const std::vector<int64_t> e = position_bucket_edges(seq_len, first_bucket);
  for (size_t i = 0; i + 1 < e.size(); ++i) buckets_.push_back({e[i], e[i + 1]});
}

void RetrievalAccuracy::add(models::TransformerLM& model, const SyntheticTask& task, uint64_t index, int64_t step,
                            Device dev, DType compute) {
  SPARROW_CHECK(task.seq_len() == seq_len_, "eval: a synthetic task of ", task.seq_len(), " tokens for a model of ",
                seq_len_);
  NoGradGuard no_grad;
  const Batch batch = task.batch_at(index);
  const int64_t B = task.batch_size(), T = seq_len_, V = model.options().vocab_size;
  const Tensor logits =
      model.forward(batch.inputs.to(dev), step, compute).to(DType::F32).to(Device::cpu()).contiguous();
  const float* lp = logits.data<float>();
  for (int64_t r = 0; r < B; ++r) {
    const SyntheticExample ex = task.example(index, r);
    for (const SyntheticQuery& q : find_queries(cfg_, ex)) {
      auto b = std::find_if(buckets_.begin(), buckets_.end(),
                            [&](const DistanceBucket& d) { return q.distance >= d.begin && q.distance < d.end; });
      SPARROW_CHECK(b != buckets_.end(), "eval: distance ", q.distance, " outside the sequence of ", T);
      bool all = true;
      for (int64_t t : q.value_targets) {
        const float* row = lp + (r * T + t) * V;
        const int64_t guess = std::max_element(row, row + V) - row;
        const bool right = guess == ex.targets[size_t(t)];
        all = all && right;
        ++b->bytes;
        b->bytes_right += right;
      }
      ++b->queries;
      b->queries_right += all;
    }
  }
}

DistanceBucket RetrievalAccuracy::total() const {
  DistanceBucket t{0, seq_len_};
  for (const DistanceBucket& b : buckets_) {
    t.queries += b.queries;
    t.queries_right += b.queries_right;
    t.bytes += b.bytes;
    t.bytes_right += b.bytes_right;
  }
  return t;
}

}  // namespace sparrow::train
