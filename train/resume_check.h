// Whether a checkpoint belongs to the run resuming from it: the configuration recorded in its
// state (the resolved YAML, under extra.config) must have the same model and the same data
// (source, split, document size) as this run's; other keys (steps, lr, eval, logging) may change
// between a run and its resumption.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "train/checkpoint.h"
#include "train/config/config.h"

namespace sparrow::train {

// What the trainer records in TrainState::extra for check_resumable to read back.
nlohmann::json run_record(const Config& cfg);

// Throws ConfigError naming the checkpoint and the first differing key. A checkpoint without a
// recorded configuration (written before there was one) passes: its shapes are still checked.
void check_resumable(const Config& cfg, const TrainState& state, const std::string& ckpt_dir);

// The train.seq_len a checkpoint was trained at, from its recorded configuration; none when it
// records none or one this build cannot read (written under older rules). eval and sample use
// it: positions past the trained length are ones the model never learned, and decode builds its
// layouts at train.seq_len.
std::optional<int64_t> trained_seq_len(const TrainState& state, const std::string& ckpt_dir);

}  // namespace sparrow::train
