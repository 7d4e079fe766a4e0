#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <vector>

#include "framework/nn/safetensors.h"

namespace fs = std::filesystem;

namespace sparrow::train {

namespace {

constexpr const char* kFormat = "sparrow-checkpoint-1";

void fsync_path(const fs::path& p, bool directory) {
  int fd = ::open(p.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) throw CheckpointError("cannot open " + p.string() + " to sync it");
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw CheckpointError("fsync failed on " + p.string());
}

void write_text_synced(const fs::path& p, const std::string& text) {
  {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << text;
    f.flush();
    if (!f) throw CheckpointError("cannot write " + p.string() + " (disk full or not writable?)");
  }
  fsync_path(p, false);
}

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

// Complete checkpoints, oldest first.
std::vector<fs::path> list_checkpoints(const fs::path& root) {
  std::vector<fs::path> out;
  if (!fs::is_directory(root)) return out;
  static const std::regex re("step-[0-9]{8}");
  for (auto& e : fs::directory_iterator(root))
    if (e.is_directory() && std::regex_match(e.path().filename().string(), re) &&
        fs::exists(e.path() / "state.json"))
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::string save_checkpoint(const std::string& run_dir, const TrainState& state, const nn::ParameterBuffer& params,
                            const optim::AdamW& opt, int64_t keep_last) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  fs::create_directories(root);
  const fs::path final_dir = root / step_name(state.step);
  const fs::path tmp = root / (step_name(state.step) + ".tmp");
  fs::remove_all(tmp);
  fs::create_directories(tmp);

  params.save((tmp / "weights.safetensors").string(), {{"format", kFormat}, {"step", std::to_string(state.step)}});
  nn::save_safetensors((tmp / "optimizer.safetensors").string(), opt.state_tensors(),
                       {{"format", kFormat}, {"optimizer", "adamw"}});
  nlohmann::json j;
  j["format"] = kFormat;
  j["step"] = state.step;
  j["optimizer_step"] = opt.step_count();
  j["rng"] = state.rng;
  j["sampler"] = state.sampler;
  j["schedule"] = state.schedule;
  j["tokens_seen"] = state.tokens_seen;
  j["extra"] = state.extra;
  // state.json last: its presence marks the folder complete (list_checkpoints checks it).
  write_text_synced(tmp / "state.json", j.dump(2) + "\n");
  fsync_path(tmp, true);

  if (fs::exists(final_dir)) fs::remove_all(final_dir);  // re-saving the same step replaces it
  fs::rename(tmp, final_dir);
  fsync_path(root, true);

  // Retention: the newest keep_last complete checkpoints stay; stale .tmp folders go too.
  for (auto& e : fs::directory_iterator(root))
    if (e.path().extension() == ".tmp") fs::remove_all(e.path());
  if (keep_last > 0) {
    auto all = list_checkpoints(root);
    for (size_t i = 0; i + static_cast<size_t>(keep_last) < all.size(); ++i) fs::remove_all(all[i]);
  }
  return final_dir.string();
}

std::optional<std::string> latest_checkpoint(const std::string& run_dir) {
  auto all = list_checkpoints(fs::path(run_dir) / "checkpoints");
  if (all.empty()) return std::nullopt;
  return all.back().string();
}

TrainState load_checkpoint(const std::string& ckpt_dir, const nn::ParameterBuffer& params, optim::AdamW& opt) {
  const fs::path dir(ckpt_dir);
  const fs::path state_path = dir / "state.json";
  if (!fs::is_directory(dir)) throw CheckpointError("checkpoint " + ckpt_dir + " does not exist");
  for (const char* f : {"weights.safetensors", "optimizer.safetensors", "state.json"})
    if (!fs::exists(dir / f)) throw CheckpointError("checkpoint " + ckpt_dir + " is incomplete: " + f + " is missing");
  nlohmann::json j;
  try {
    std::ifstream in(state_path);
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw CheckpointError(state_path.string() + ": not valid JSON (" + e.what() + ")");
  }
  // value() and at() below throw json::type_error on anything but an object.
  if (!j.is_object()) throw CheckpointError(state_path.string() + ": not a JSON object");
  if (j.value("format", "") != kFormat)
    throw CheckpointError(state_path.string() + ": unknown checkpoint format '" + j.value("format", "") + "'");
  TrainState s;
  try {
    s.step = j.at("step").get<int64_t>();
    s.rng = j.at("rng");
    s.sampler = j.at("sampler");
    s.schedule = j.at("schedule");
    s.tokens_seen = j.at("tokens_seen").get<double>();
    s.extra = j.value("extra", nlohmann::json::object());
  } catch (const std::exception& e) {
    throw CheckpointError(state_path.string() + ": " + e.what());
  }
  // Weights and optimizer state: every name, shape and dtype is checked before anything is
  // written, so a mismatched checkpoint leaves the model untouched.
  try {
    params.load((dir / "weights.safetensors").string());
    auto m = nn::read_safetensors((dir / "optimizer.safetensors").string());
    optim::AdamWState st;
    st.step = j.at("optimizer_step").get<int64_t>();
    for (auto& [name, t] : m.tensors) {
      if (name == "exp_avg") st.exp_avg = t;
      else if (name == "exp_avg_sq") st.exp_avg_sq = t;
    }
    if (!st.exp_avg.defined() || !st.exp_avg_sq.defined())
      throw CheckpointError((dir / "optimizer.safetensors").string() + ": missing exp_avg or exp_avg_sq");
    opt.load_state(st);
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    throw CheckpointError(std::string(e.what()));
  }
  return s;
}

}  // namespace sparrow::train
