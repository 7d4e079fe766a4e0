// Loss by token position: how well a model predicts the byte at position t of a window given the
// t bytes before it. A model that uses far context predicts late positions better than early
// ones; one that sees only a local window flattens out once t passes that window.
//
// Buckets double in width: [0, f), [f, 2f), [2f, 4f), … up to the sequence length T (the last one
// clipped to T), f = 512 by default: 0–512, 512–1K, 1–2K, 2–4K, …
// The loss at position t is the model's cross-entropy for target t (the byte at t+1 predicted
// from bytes 0..t), in nats; bits per byte = nats / ln 2 (one token is one byte).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "framework/core/tensor.h"
#include "models/transformer.h"
#include "train/data/batch.h"

namespace sparrow::train {

// Edges e_0 = 0 < e_1 = first < e_2 = 2·first < … < e_k = seq_len: bucket i is [e_i, e_{i+1}).
std::vector<int64_t> position_bucket_edges(int64_t seq_len, int64_t first = 512);

struct PositionBucket {
  int64_t begin = 0, end = 0;    // positions [begin, end)
  double nats = 0;               // summed loss of the scored targets at these positions
  int64_t tokens = 0;            // scored targets (those not kIgnoreIndex)
  double bits_per_byte() const;  // NaN when nothing was scored
};

// Sums the loss by position bucket over batches, and the batch means exactly as the trainer's
// validation computes them (model.loss of each batch, summed in double and divided by the
// number of batches), so its bits per byte can be compared with metrics.jsonl's val_bpb bit for bit.
class PositionLoss {
 public:
  PositionLoss(int64_t seq_len, int64_t first_bucket);

  // One forward pass without recording. The cross-entropy of each bucket is the framework's own
  // op over the batch's logits with the other positions' targets ignored, so the buckets and the
  // batch mean come from the same logits and the same loss code.
  void add(models::TransformerLM& model, const Batch& batch, int64_t step, Device dev, DType compute);

  const std::vector<PositionBucket>& buckets() const { return buckets_; }
  int64_t batches() const { return batches_; }
  // Σ over buckets of nats / Σ tokens, in bits: every scored token weighs the same.
  double bits_per_byte() const;
  // Mean over batches of each batch's mean loss, in bits: the trainer's val_bpb over these batches.
  double trainer_bits_per_byte() const;

 private:
  int64_t seq_len_;
  std::vector<PositionBucket> buckets_;
  double batch_mean_sum_ = 0;
  int64_t batches_ = 0;
};

}  // namespace sparrow::train
