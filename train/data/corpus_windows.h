// Training windows from a corpus split: each row of a batch is seq_len+1 consecutive tokens
// (inputs = the first seq_len, targets = the last seq_len) drawn WITHIN one document: the start
// is uniform over every position at which a whole window fits inside a document's text, so
// documents are weighted by their length and no window crosses a boundary. Only when no document
// of the split is long enough (a corpus of short files, a very long seq_len) do windows run
// across documents, the separator byte marking each boundary (GPT-style packing); describe()
// says which. A split is a contiguous run of whole documents, so a window never mixes train and
// validation text.
//
// Row r of batch i starts at a Philox draw keyed by (seed, salt) at counter i·B + r: a pure
// function of the batch index, so resuming at any batch reproduces the uninterrupted stream.
#pragma once
#include <memory>
#include <vector>

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
  // Documents long enough for a window: their first token and the prefix sum of their window
  // starts (len − seq_ each). Empty: packing across documents.
  std::vector<int64_t> doc_begin_, starts_before_;
  int64_t total_starts_ = 0;
};

}  // namespace sparrow::train
