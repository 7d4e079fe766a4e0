// A trained model read back from its run folder, ready to decode: the run's resolved
// config.yaml, the weights of one checkpoint (verified: CRCs, step, and the config recorded in
// it must describe this model at this sequence length), each attention layer at the sparsity of
// the last step those weights took.
#pragma once
#include <memory>
#include <stdexcept>
#include <string>

#include "models/transformer.h"
#include "train/config/config.h"

namespace sparrow::train {

struct SampleError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TrainedModel {
  Config config;
  std::string checkpoint;  // the folder loaded
  int64_t step = 0;        // training steps behind the weights
  // The step attention is told when decoding: the last step the weights took (step − 1), so each
  // layer's sparsity is the schedule's value there, as eval and the trainer's validation use.
  int64_t attention_step() const { return step > 0 ? step - 1 : 0; }
  std::unique_ptr<models::TransformerLM> model;  // on the CPU (where decode runs), in eval mode
};

// checkpoint_dir empty: the newest complete checkpoint of run_dir, which must then verify (a
// corrupt one is refused, never replaced by an older one without being asked). Throws
// SampleError (no such run folder, no config.yaml, no checkpoint), ConfigError or
// CheckpointError, each one line naming the path.
TrainedModel load_trained_model(const std::string& run_dir, const std::string& checkpoint_dir = "");

}  // namespace sparrow::train
