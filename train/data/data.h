// The trainer's data: train and validation samplers built from the config's data section.
#pragma once
#include <memory>
#include <string>

#include "train/config/config.h"
#include "train/data/batch.h"
#include "train/data/corpus.h"

namespace sparrow::train {

struct DataPipeline {
  Sampler train;
  Sampler val;                           // !val.valid() when data.val_fraction is 0 (corpus)
  std::shared_ptr<const Corpus> corpus;  // null for synthetic tasks
  std::string describe() const;
};

// Batches of train.batch_size × train.seq_len, seeded by train.seed. Throws sparrow::Error (one
// line naming data.path or the data.synthetic keys) when the data cannot make one sequence.
DataPipeline open_data(const Config& cfg);

}  // namespace sparrow::train
