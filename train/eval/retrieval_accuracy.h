// Needle and recall accuracy by distance (data.synthetic): for each query of a synthetic example,
// whether the model's most likely next byte is the right one at every value byte it must
// retrieve (exact match), and per byte. The distance is how far back the answer lies:
//   needle: from the '#' that opens the needle to the '?' that opens the query;
//   recall: from the queried key's place in the listing to its '?'.
// Distances are bucketed like positions (train/eval/position_loss.h): [0, f), [f, 2f), …
// An attention pattern that cannot reach back d tokens answers at chance (1/10 per digit) there.
#pragma once
#include <cstdint>
#include <vector>

#include "models/transformer.h"
#include "train/data/synthetic.h"

namespace sparrow::train {

struct DistanceBucket {
  int64_t begin = 0, end = 0;  // distances [begin, end)
  int64_t queries = 0, queries_right = 0;
  int64_t bytes = 0, bytes_right = 0;
  double accuracy() const;       // queries_right / queries (NaN when empty)
  double byte_accuracy() const;  // bytes_right / bytes
};

// One query of an example: where its '?' is, how far back its answer lies, and the positions
// (targets index t: the byte at t+1) of its value bytes.
struct SyntheticQuery {
  int64_t distance = 0;
  std::vector<int64_t> value_targets;
};

// The queries of one example, read from its bytes (the markers and alphabets of synthetic.h).
std::vector<SyntheticQuery> find_queries(const SyntheticConfig& cfg, const SyntheticExample& ex);

class RetrievalAccuracy {
 public:
  RetrievalAccuracy(const SyntheticConfig& cfg, int64_t seq_len, int64_t first_bucket);

  // Scores rows [0, batch_size) of batch `index` of `task` with one forward pass.
  void add(models::TransformerLM& model, const SyntheticTask& task, uint64_t index, int64_t step, Device dev,
           DType compute);

  const std::vector<DistanceBucket>& buckets() const { return buckets_; }
  DistanceBucket total() const;

 private:
  SyntheticConfig cfg_;
  int64_t seq_len_;
  std::vector<DistanceBucket> buckets_;
};

}  // namespace sparrow::train
