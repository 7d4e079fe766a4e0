#include "train/eval/position_loss.h"

#include <cmath>
#include <limits>

#include "framework/autograd/node.h"
#include "framework/ops/ops.h"

namespace sparrow::train {

std::vector<int64_t> position_bucket_edges(int64_t seq_len, int64_t first) {
  SPARROW_CHECK(seq_len > 0, "position buckets: the sequence length must be > 0, got ", seq_len);
  SPARROW_CHECK(first > 0, "position buckets: the first bucket's width must be > 0, got ", first);
  std::vector<int64_t> e{0};
  for (int64_t end = first; e.back() < seq_len; end *= 2) e.push_back(std::min(end, seq_len));
  return e;
}

double PositionBucket::bits_per_byte() const {
  return tokens ? nats / static_cast<double>(tokens) / std::log(2.0) : std::numeric_limits<double>::quiet_NaN();
}

PositionLoss::PositionLoss(int64_t seq_len, int64_t first_bucket) : seq_len_(seq_len) {
  const std::vector<int64_t> e = position_bucket_edges(seq_len, first_bucket);
  for (size_t i = 0; i + 1 < e.size(); ++i) buckets_.push_back({e[i], e[i + 1]});
}

void PositionLoss::add(models::TransformerLM& model, const Batch& batch, int64_t step, Device dev, DType compute) {
  SPARROW_CHECK(batch.inputs.dim() == 2 && batch.inputs.size(1) == seq_len_, "eval: expected batches of ", seq_len_,
                " tokens, got ", describe(batch.inputs));
  NoGradGuard no_grad;
  const int64_t B = batch.inputs.size(0), T = seq_len_, n = B * T;
  // What TransformerLM::loss computes, kept apart so that every bucket reuses the logits.
  const Tensor logits =
      reshape(model.forward(batch.inputs.to(dev), step, compute), {n, model.options().vocab_size}).to(DType::F32);
  const Tensor targets = reshape(batch.targets, {n});
  batch_mean_sum_ += cross_entropy(logits, targets.to(dev), kIgnoreIndex).item();
  ++batches_;

  const int32_t* tg = targets.data<int32_t>();
  for (PositionBucket& b : buckets_) {
    std::vector<int32_t> masked(static_cast<size_t>(n), kIgnoreIndex);
    int64_t scored = 0;
    for (int64_t r = 0; r < B; ++r)
      for (int64_t t = b.begin; t < b.end; ++t) {
        const int32_t y = tg[r * T + t];
        masked[size_t(r * T + t)] = y;
        scored += y != kIgnoreIndex;
      }
    if (scored == 0) continue;
    // The op returns the bucket's mean; times its count it is the bucket's sum.
    const double mean = cross_entropy(logits, from_ints(masked, {n}).to(dev), kIgnoreIndex).item();
    b.nats += mean * static_cast<double>(scored);
    b.tokens += scored;
  }
}

double PositionLoss::bits_per_byte() const {
  double nats = 0;
  int64_t tokens = 0;
  for (const PositionBucket& b : buckets_) {
    nats += b.nats;
    tokens += b.tokens;
  }
  return tokens ? nats / static_cast<double>(tokens) / std::log(2.0) : std::numeric_limits<double>::quiet_NaN();
}

double PositionLoss::trainer_bits_per_byte() const {
  return batches_ ? batch_mean_sum_ / static_cast<double>(batches_) / std::log(2.0)
                  : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace sparrow::train
