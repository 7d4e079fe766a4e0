// What the data pipeline hands the trainer: token batches, and a Sampler whose whole state is a
// counter, so resuming at step k draws exactly the batches an uninterrupted run would.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "framework/core/tensor.h"

namespace sparrow::train {

// Targets at positions that are not scored (cross-entropy skips them).
constexpr int32_t kIgnoreIndex = -100;

struct Batch {
  Tensor inputs;   // I32 [B, T] on the CPU: token ids 0..255
  Tensor targets;  // I32 [B, T]: the next token, or kIgnoreIndex where not scored
};

// A deterministic source: batch_at(i) is a pure function of i (and the source's seed).
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual Batch batch_at(uint64_t index) const = 0;
  virtual int64_t batch_size() const = 0;
  virtual int64_t seq_len() const = 0;
  virtual std::string describe() const = 0;
};

class Sampler {
 public:
  Sampler() = default;
  explicit Sampler(std::shared_ptr<const BatchSource> source) : source_(std::move(source)) {}

  bool valid() const { return source_ != nullptr; }
  Batch next() { return source().batch_at(counter_++); }
  // The counter: batches drawn so far. Save it with a checkpoint; set it back to resume.
  uint64_t state() const { return counter_; }
  void set_state(uint64_t counter) { counter_ = counter; }
  const BatchSource& source() const {
    SPARROW_CHECK(source_, "Sampler: no batch source (this split is empty)");
    return *source_;
  }

 private:
  std::shared_ptr<const BatchSource> source_;
  uint64_t counter_ = 0;
};

// Philox draws are keyed by a 64-bit seed; this mixes the run seed with a per-stream salt
// (train/val, task) so the streams are independent.
uint64_t mix_seed(uint64_t seed, uint64_t salt);

}  // namespace sparrow::train
