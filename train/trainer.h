// The training loop behind `train`: builds the model and data from a Config, then runs AdamW
// steps with warmup + decay, gradient accumulation and clipping, the sparsity schedule, eval in
// bits per byte, metrics, checkpoints and exact resume. The same loop runs on CPU and GPU; one
// step's device work is train/step.h's (on the GPU, replayed as a CUDA graph where it can be).
#pragma once
#include <string>

#include "train/config/config.h"

namespace sparrow::train {

struct RunOptions {
  std::string out_dir;  // run folder; empty: checkpoint.dir from the config
  // "", "auto" (the newest checkpoint in the run folder that verifies, if any; a corrupt newer one
  // is refused with a warning) or a checkpoint folder. Checkpoints past the resume step (an
  // abandoned trajectory) are moved to <run>/abandoned/<timestamp>/. The run folder is locked
  // (<run>/.lock) for the whole run.
  std::string resume;
  std::string config_path;  // for the record in the run folder
  // Stop (checkpointing) once this step is done, as a signal would: resuming later continues the
  // same run. 0: run to train.steps.
  int64_t stop_after = 0;
  // Time every op and phase of the steps after the first two (waiting for the device around
  // each), then write the table to <run>/profile.txt and stdout. Slows the run down.
  bool profile = false;
};

struct RunResult {
  int64_t steps_done = 0;
  double final_loss = 0;
  double final_val_bpb = -1;   // −1: no eval ran
  bool stopped_early = false;  // by SIGINT/SIGTERM or RunOptions::stop_after (checkpointed)
};

// Throws TrainError (one line) on bad data, unfit sizes, or K non-finite steps in a row.
RunResult run_training(const Config& cfg, const RunOptions& run);

struct TrainError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace sparrow::train
