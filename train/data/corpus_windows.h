// Training windows from a corpus split: each row of a batch is seq_len+1 consecutive tokens
// starting at a uniformly random offset of the split (inputs = the first seq_len, targets =
// the last seq_len). Windows may span documents: the separator byte between files marks the
// boundary, so short documents are simply concatenated (GPT-style end-of-text packing) and no
// tokens are wasted on padding. A split is a contiguous run of whole documents, so a window
// never mixes train and validation text.
//
// Row r of batch i starts at a Philox draw keyed by (seed, salt) at counter i·B + r: a pure
// function of the batch index, so resuming at any batch reproduces the uninterrupted stream.
#pragma once
#include <memory>

#include "train/data/batch.h"
#include "train/data/corpus.h"

namespace sparrow::train {

class CorpusWindows : public BatchSource {
 public:
  // Throws sparrow::Error naming the corpus path when the split holds fewer than seq_len+1 tokens.
  CorpusWindows(std::shared_ptr<const Corpus> corpus, TokenRange range, const std::string& split_name,
                int64_t batch_size, int64_t seq_len, uint64_t seed);

  Batch batch_at(uint64_t index) const override;
  int64_t batch_size() const override { return batch_; }
  int64_t seq_len() const override { return seq_; }
  std::string describe() const override;
  // The first token of row `row` of batch `index` (what batch_at copies from).
  int64_t window_start(uint64_t index, int64_t row) const;
  const TokenRange& range() const { return range_; }

 private:
  std::shared_ptr<const Corpus> corpus_;
  TokenRange range_;
  std::string split_;
  int64_t batch_, seq_;
  uint64_t key_;
};

}  // namespace sparrow::train
