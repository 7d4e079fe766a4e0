#include "train/sample/trained_model.h"

#include <algorithm>
#include <filesystem>

#include "framework/nn/parameter_buffer.h"
#include "framework/optim/adamw.h"
#include "train/checkpoint.h"
#include "train/model_from_config.h"
#include "train/resume_check.h"

namespace fs = std::filesystem;

namespace sparrow::train {
namespace {

// Decode builds its layouts at train.seq_len: the checkpoint must have been trained at the length
// config.yaml gives (a run resumed with another train.seq_len rewrites config.yaml, and its older
// checkpoints were trained at the old one). A checkpoint recording no configuration passes.
void check_trained_length(const Config& cfg, const TrainState& st, const std::string& dir) {
  const std::optional<int64_t> trained = trained_seq_len(st, dir);
  if (trained && *trained != cfg.train.seq_len)
    throw SampleError("checkpoint " + dir + " was trained at train.seq_len " + std::to_string(*trained) +
                      ", but the run's config.yaml has " + std::to_string(cfg.train.seq_len));
}

}  // namespace

TrainedModel load_trained_model(const std::string& run_dir, const std::string& checkpoint_dir) {
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec)) throw SampleError("run folder " + run_dir + " does not exist");
  const std::string config_path = (fs::path(run_dir) / "config.yaml").string();
  if (!fs::is_regular_file(config_path, ec)) throw SampleError(run_dir + " is not a run folder: it has no config.yaml");

  TrainedModel t;
  t.config = load_config(config_path);
  if (checkpoint_dir.empty()) {
    const std::optional<std::string> newest = latest_checkpoint(run_dir);
    if (!newest) throw SampleError("run folder " + run_dir + " has no complete checkpoint");
    t.checkpoint = *newest;
  } else {
    if (!fs::is_directory(checkpoint_dir, ec)) throw SampleError("checkpoint " + checkpoint_dir + " does not exist");
    t.checkpoint = checkpoint_dir;
  }

  // The initial weights are overwritten by the checkpoint's; the optimizer exists only because
  // load_checkpoint restores one (its moments are read, checked and then unused).
  Generator init(t.config.train.seed);
  t.model = std::make_unique<models::TransformerLM>(model_options(t.config), init, Device::cpu());
  nn::ParameterBuffer params = nn::ParameterBuffer::pack(*t.model, DType::F32, Device::cpu());
  optim::AdamW opt(params);
  const TrainState st = load_checkpoint(t.checkpoint, params, opt, [&](const std::string& dir, const TrainState& s) {
    check_resumable(t.config, s, dir);
    check_trained_length(t.config, s, dir);
  });
  t.step = st.step;
  t.model->eval();
  return t;
}

}  // namespace sparrow::train
