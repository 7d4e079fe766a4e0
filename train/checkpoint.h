// Checkpoints: one folder per saved step, <run>/checkpoints/step-<8 digits>/ holding
//   weights.safetensors    the model's parameters (PyTorch can read them: safetensors.torch)
//   optimizer.safetensors  AdamW's m and v (flat, the parameter buffer's layout)
//   state.json             step, optimizer step, RNG and data-sampler positions, schedule state
// Written atomically: everything goes into step-N.tmp/, each file is fsynced, then the folder is
// renamed to step-N and the parent fsynced. A crash mid-write leaves only a .tmp folder, which
// is ignored and cleaned up; the previous checkpoint is never touched until the new one is whole.
//
// Checkpoints verify themselves: each tensor's CRC-32 sits in its file's metadata, state.json
// carries the CRC-32 of its own content ("crc32": the checksum of the object without that key,
// dumped compact), and the state's step must match the folder name and the weights' metadata.
// A checkpoint that fails any check is refused with CheckpointError naming the file (and tensor).
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "framework/nn/parameter_buffer.h"
#include "framework/optim/adamw.h"

namespace sparrow::train {

struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Everything beyond weights and optimizer moments that an exact resume needs.
struct TrainState {
  int64_t step = 0;         // steps completed
  nlohmann::json rng;       // generator positions by name: {"dropout": [seed, offset], ...}
  nlohmann::json sampler;   // the data sampler's state
  nlohmann::json schedule;  // per-layer current sparsity
  double tokens_seen = 0;
  nlohmann::json extra;   // anything else (the trainer: {"config": resolved YAML})
  bool verified = false;  // read back with checksums (false: a checkpoint from before them)
};

// Saves step-<state.step> with the optimizer state `opt` of the whole buffer (AdamW::state() on one
// process; gathered from the shards under ZeRO-1: dist::gather_optimizer_state); then retires the oldest complete
// checkpoints beyond keep_last (0: keep all), never one named in `protect` (the trainer's resume source) nor the one
// just written. Returns the folder written.
std::string save_checkpoint(const std::string& run_dir, const TrainState& state, const nn::ParameterBuffer& params,
                            const optim::AdamWState& opt, int64_t keep_last,
                            const std::vector<std::string>& protect = {});

// The complete checkpoint folders in run_dir (those with a state.json), by step, oldest first.
std::vector<std::string> list_checkpoints(const std::string& run_dir);
// The newest complete checkpoint folder in run_dir, if any (not verified: see load_latest_checkpoint).
std::optional<std::string> latest_checkpoint(const std::string& run_dir);

// Reads every file of a checkpoint and checks it (checksums, format, step against folder name
// and weights); returns its state. Throws CheckpointError naming the file on the first failure.
TrainState verify_checkpoint(const std::string& ckpt_dir);

// Loads a checkpoint folder into params and opt (names, shapes, dtypes and checksums checked
// before anything is written) and returns its TrainState. `check_state`, when given, sees the
// folder and its state before the weights are touched and may throw to refuse it (e.g. another model's
// configuration). Throws CheckpointError naming the file on anything missing, malformed or corrupt.
TrainState load_checkpoint(const std::string& ckpt_dir, const nn::ParameterBuffer& params, optim::AdamW& opt,
                           const std::function<void(const std::string&, const TrainState&)>& check_state = {});

struct LoadedCheckpoint {
  std::string dir;
  TrainState state;
};

// `--resume auto`: loads the newest checkpoint in run_dir that verifies. Each newer one refused
// is reported through `warn` as one line naming it, its fault and the checkpoint taken instead.
// nullopt: the run folder has no checkpoint. Throws CheckpointError when it has some but none
// loads (never silently starts over); errors from check_state are not fallen back from.
std::optional<LoadedCheckpoint> load_latest_checkpoint(
    const std::string& run_dir, const nn::ParameterBuffer& params, optim::AdamW& opt,
    const std::function<void(const std::string&)>& warn,
    const std::function<void(const std::string&, const TrainState&)>& check_state = {});

// Checkpoint folders of run_dir whose step is past `step` (complete or not), by step.
std::vector<std::string> checkpoints_after(const std::string& run_dir, int64_t step);

}  // namespace sparrow::train
