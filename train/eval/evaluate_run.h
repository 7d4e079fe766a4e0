// `eval`: a trained run's checkpoint scored on held-out data, by position and by distance.
//   - Corpus runs: one window of train.seq_len+1 tokens from the start of each validation document
//     long enough to hold it (data.val_fraction's trailing documents: whole files never trained
//     on), so position t means "t bytes of this document's context"; loss by position bucket.
//   - Synthetic runs (data.synthetic): needle / recall accuracy by distance on the validation
//     stream of the task.
//   - Both: the trainer's own validation batches (eval.batches of them), scored the way the
//     trainer scores them, beside the val_bpb that metrics.jsonl recorded at that step.
#pragma once
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "train/config/config.h"
#include "train/eval/position_loss.h"
#include "train/eval/retrieval_accuracy.h"

namespace sparrow::train {

// Bad input (no run folder, no or corrupt checkpoint, a checkpoint of another model or sequence
// length, data that cannot be scored): one line naming the file, key and value.
struct EvalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct EvalOptions {
  std::string run_dir;            // holds config.yaml, checkpoints/, metrics.jsonl
  std::string checkpoint;         // a checkpoint folder; empty: the run's newest complete one
  int64_t first_bucket = 512;     // width of the first position/distance bucket (then doubling)
  int64_t max_docs = 64;          // held-out documents scored (0: every one long enough)
  int64_t synthetic_batches = 0;  // batches of the synthetic validation stream (0: eval.batches)
  std::string device;             // "", auto, cpu or cuda ("": train.device of the run)
};

struct EvalReport {
  std::string run_dir, checkpoint, device, backends, data;
  int64_t step = 0, seq_len = 0, batch_size = 0;
  // Held-out documents (corpus runs).
  std::optional<PositionLoss> documents;
  int64_t val_docs = 0, docs_scored = 0;  // validation documents, and those scored
  // The trainer's validation batches (absent when data.val_fraction is 0).
  std::optional<PositionLoss> trainer_val;
  std::optional<double> metrics_val_bpb;  // metrics.jsonl's val_bpb at this step, if it has one
  // Synthetic runs.
  std::optional<RetrievalAccuracy> retrieval;
  std::string task;
};

// Throws EvalError (and ConfigError for a config.yaml that no longer loads).
EvalReport evaluate_run(const EvalOptions& opt);

nlohmann::json to_json(const EvalReport& r);
std::string format_report(const EvalReport& r);  // the readable tables for stdout

}  // namespace sparrow::train
