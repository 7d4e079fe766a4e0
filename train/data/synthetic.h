// Synthetic long-range tasks, byte-level, scored only where the answer is: targets are
// kIgnoreIndex everywhere else, so accuracy at the scored positions says whether an attention
// pattern lets the query reach the information it needs.
//
// Alphabet: filler 'a'..'z', keys 'A'..'Z' (key_len bytes), values '0'..'9' (value_len bytes),
// '#' marks the needle, '?' marks a query. Each sequence has seq_len+1 bytes x; inputs are
// x[0..T), targets x[1..T] where scored.
//
// needle: x = filler … '#' key value … filler … '?' key value
//   The query block ends the sequence; the needle's '#' sits `distance` tokens before the '?'
//   (distance 0: uniform over the lengths that fit). Scored: the value bytes after the query.
// recall: x = filler … k1 v1 k2 v2 … kP vP  <gap of filler>  '?' kq1 vq1 '?' kq2 vq2 …
//   P distinct keys with random values, then Q distinct keys among them, each followed by its
//   value. The gap is `distance` filler bytes (0: uniform over what fits). Scored: the value
//   bytes after each queried key.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/config/config.h"
#include "train/data/batch.h"

namespace sparrow::train {

struct SyntheticExample {
  std::vector<int32_t> tokens;   // seq_len + 1 bytes
  std::vector<int32_t> targets;  // seq_len: tokens[t+1] where scored, else kIgnoreIndex
};

class SyntheticTask : public BatchSource {
 public:
  // Throws sparrow::Error naming data.synthetic keys when the task cannot fit in seq_len.
  SyntheticTask(const SyntheticConfig& cfg, int64_t batch_size, int64_t seq_len, uint64_t seed, uint64_t salt);

  Batch batch_at(uint64_t index) const override;
  int64_t batch_size() const override { return batch_; }
  int64_t seq_len() const override { return seq_; }
  std::string describe() const override;
  // Row `row` of batch `index`.
  SyntheticExample example(uint64_t index, int64_t row) const;
  // The shortest seq_len this configuration fits (for the chosen distance, or distance 0).
  static int64_t min_seq_len(const SyntheticConfig& cfg);

 private:
  SyntheticConfig cfg_;
  int64_t batch_, seq_;
  uint64_t key_;
};

}  // namespace sparrow::train
