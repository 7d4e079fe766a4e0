// Checkpoints: one folder per saved step, <run>/checkpoints/step-<8 digits>/ holding
//   weights.safetensors    the model's parameters (PyTorch can read them: safetensors.torch)
//   optimizer.safetensors  AdamW's m and v (flat, the parameter buffer's layout)
//   state.json             step, optimizer step, RNG and data-sampler positions, schedule state
// Written atomically: everything goes into step-N.tmp/, each file is fsynced, then the folder is
// renamed to step-N and the parent fsynced. A crash mid-write leaves only a .tmp folder, which
// is ignored and cleaned up; the previous checkpoint is never touched until the new one is whole.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "framework/nn/parameter_buffer.h"
#include "framework/optim/adamw.h"

namespace sparrow::train {

struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Everything beyond weights and optimizer moments that an exact resume needs.
struct TrainState {
  int64_t step = 0;                 // steps completed
  nlohmann::json rng;               // generator positions by name: {"dropout": [seed, offset], ...}
  nlohmann::json sampler;           // the data sampler's state
  nlohmann::json schedule;          // per-layer current sparsity
  double tokens_seen = 0;
  nlohmann::json extra;             // anything else (e.g. config digest)
};

// Saves step-<state.step>; then deletes the oldest complete checkpoints beyond keep_last
// (0: keep all). Returns the folder written.
std::string save_checkpoint(const std::string& run_dir, const TrainState& state, const nn::ParameterBuffer& params,
                            const optim::AdamW& opt, int64_t keep_last);

// The newest complete checkpoint folder in run_dir, if any.
std::optional<std::string> latest_checkpoint(const std::string& run_dir);

// Loads a checkpoint folder into params and opt (names, shapes and dtypes checked) and returns
// its TrainState. Throws CheckpointError naming the file on anything missing or malformed.
TrainState load_checkpoint(const std::string& ckpt_dir, const nn::ParameterBuffer& params, optim::AdamW& opt);

}  // namespace sparrow::train
