#include "train/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <vector>

#include "framework/core/atomic_file.h"
#include "framework/core/crc32.h"
#include "framework/nn/safetensors.h"

namespace fs = std::filesystem;

namespace sparrow::train {

namespace {

constexpr const char* kFormat = "sparrow-checkpoint-2";
// Before checksums: still loaded (unverified) so older runs resume.
constexpr const char* kFormatV1 = "sparrow-checkpoint-1";
constexpr const char* kStateChecksumKey = "crc32";

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

// The step a folder name stands for; -1 if it is not step-<digits>.
int64_t step_of(const fs::path& dir) {
  static const std::regex re("step-([0-9]{8,18})");
  std::smatch m;
  const std::string name = dir.filename().string();
  if (!std::regex_match(name, m, re)) return -1;
  return std::stoll(m[1].str());
}

// Checkpoint folders (complete or not) in root, by step.
std::vector<fs::path> step_folders(const fs::path& root) {
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return {};
  for (auto& e : fs::directory_iterator(root))
    if (e.is_directory() && step_of(e.path()) >= 0) found.emplace_back(step_of(e.path()), e.path());
  std::sort(found.begin(), found.end());
  std::vector<fs::path> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

std::vector<fs::path> complete_checkpoints(const fs::path& root) {
  std::vector<fs::path> out;
  for (auto& p : step_folders(root))
    if (fs::exists(p / "state.json")) out.push_back(p);
  return out;
}

// The checksum of a state object: CRC-32 of its compact dump without the checksum key. nlohmann
// dumps canonically (sorted keys, shortest round-trip numbers), so parse-then-dump reproduces
// the bytes that were checksummed.
std::string state_checksum(nlohmann::json j) {
  j.erase(kStateChecksumKey);
  return crc32_hex(crc32(j.dump()));
}

// Removes a folder so that a crash midway never leaves a half-deleted checkpoint that still looks
// complete: renamed out of the step-N namespace first (atomic), then deleted.
void retire(const fs::path& dir) {
  fs::path gone = dir;
  gone += ".del";
  fs::remove_all(gone);
  fs::rename(dir, gone);
  fs::remove_all(gone);
}

bool same_folder(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::equivalent(a, b, ec);
}

// state.json of ckpt_dir, checked: format, checksum, and step against the folder name.
struct StateFile {
  nlohmann::json j;
  TrainState state;
};

StateFile read_state(const fs::path& dir) {
  const fs::path state_path = dir / "state.json";
  if (!fs::is_directory(dir)) throw CheckpointError("checkpoint " + dir.string() + " does not exist");
  for (const char* f : {"weights.safetensors", "optimizer.safetensors", "state.json"})
    if (!fs::exists(dir / f))
      throw CheckpointError("checkpoint " + dir.string() + " is incomplete: " + f + " is missing");
  StateFile out;
  nlohmann::json& j = out.j;
  try {
    std::ifstream in(state_path);
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw CheckpointError(state_path.string() + ": not valid JSON, the file is corrupt (" + e.what() + ")");
  }
  if (!j.is_object()) throw CheckpointError(state_path.string() + ": not a JSON object, the file is corrupt");
  // value() would throw json's type_error on a non-string "format": read it only when it is one.
  const std::string format = j.contains("format") && j["format"].is_string() ? j["format"].get<std::string>() : "";
  if (format == kFormat) {
    if (!j.contains(kStateChecksumKey) || !j[kStateChecksumKey].is_string())
      throw CheckpointError(state_path.string() + ": no checksum, the file is corrupt");
    const std::string want = j[kStateChecksumKey].get<std::string>(), got = state_checksum(j);
    if (want != got)
      throw CheckpointError(state_path.string() + ": fails its checksum (stored crc32 " + want + ", content has " +
                            got + "): the file is corrupt");
    out.state.verified = true;
  } else if (format != kFormatV1) {
    throw CheckpointError(state_path.string() + ": unknown checkpoint format '" + format + "'");
  }
  TrainState& s = out.state;
  try {
    s.step = j.at("step").get<int64_t>();
    s.rng = j.at("rng");
    s.sampler = j.at("sampler");
    s.schedule = j.at("schedule");
    s.tokens_seen = j.at("tokens_seen").get<double>();
    s.extra = j.value("extra", nlohmann::json::object());
    j.at("optimizer_step").get<int64_t>();
  } catch (const std::exception& e) {
    throw CheckpointError(state_path.string() + ": " + e.what());
  }
  const int64_t folder_step = step_of(dir);
  if (folder_step >= 0 && folder_step != s.step)
    throw CheckpointError(state_path.string() + ": records step " + std::to_string(s.step) + " but its folder is " +
                          dir.filename().string() + ": refusing a checkpoint whose state disagrees with its name");
  return out;
}

// The weights' own record of the step (written beside the checksums) must agree with the state.
void check_weights_step(const fs::path& dir, const std::map<std::string, std::string>& meta, const TrainState& s) {
  const fs::path w = dir / "weights.safetensors";
  if (!s.verified) return;
  if (!nn::safetensors_has_checksums(meta))
    throw CheckpointError(w.string() + ": has no checksums although its state.json does: the file is corrupt");
  auto it = meta.find("step");
  if (it == meta.end() || it->second != std::to_string(s.step))
    throw CheckpointError(w.string() + ": records step " + (it == meta.end() ? "(none)" : it->second) +
                          " but state.json says " + std::to_string(s.step) + ": the checkpoint is inconsistent");
}

// Errors from the safetensors reader are sparrow::Error; a checkpoint reports CheckpointError.
template <class F>
auto as_checkpoint_error(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    throw CheckpointError(e.what());
  }
}

}  // namespace

std::string save_checkpoint(const std::string& run_dir, const TrainState& state, const nn::ParameterBuffer& params,
                            const optim::AdamWState& opt, int64_t keep_last, const std::vector<std::string>& protect) {
  for (const Tensor* t : {&opt.exp_avg, &opt.exp_avg_sq})
    SPARROW_CHECK(t->defined() && t->numel() == params.numel(), "save_checkpoint: the optimizer state must cover the ",
                  params.numel(), "-element buffer (gather the shards first), got ",
                  t->defined() ? describe(*t) : std::string("none"));
  const fs::path root = fs::path(run_dir) / "checkpoints";
  fs::create_directories(root);
  const fs::path final_dir = root / step_name(state.step);
  const fs::path tmp = root / (step_name(state.step) + ".tmp");
  fs::remove_all(tmp);
  fs::create_directories(tmp);

  as_checkpoint_error([&] {
    params.save((tmp / "weights.safetensors").string(), {{"format", kFormat}, {"step", std::to_string(state.step)}});
    nn::save_safetensors((tmp / "optimizer.safetensors").string(),
                         {{"exp_avg", opt.exp_avg}, {"exp_avg_sq", opt.exp_avg_sq}},
                         {{"format", kFormat}, {"optimizer", "adamw"}, {"step", std::to_string(state.step)}});
    nlohmann::json j;
    j["format"] = kFormat;
    j["step"] = state.step;
    j["optimizer_step"] = opt.step;
    j["rng"] = state.rng;
    j["sampler"] = state.sampler;
    j["schedule"] = state.schedule;
    j["tokens_seen"] = state.tokens_seen;
    j["extra"] = state.extra;
    j[kStateChecksumKey] = state_checksum(j);
    // state.json last: its presence marks the folder complete (list_checkpoints checks it).
    write_file_atomically((tmp / "state.json").string(), j.dump(2) + "\n");
    fsync_path(tmp.string());
  });

  if (fs::exists(final_dir)) {
    // Re-saving a step: the old folder stays whole until the new one has taken its name.
    fs::path old = final_dir;
    old += ".del";
    fs::remove_all(old);
    fs::rename(final_dir, old);
    fs::rename(tmp, final_dir);
    fs::remove_all(old);
  } else {
    fs::rename(tmp, final_dir);
  }
  as_checkpoint_error([&] { fsync_path(root.string()); });

  // Leftovers of killed writes and deletions; the trainer holds the run-folder lock, so no other
  // process is writing here.
  for (auto& e : fs::directory_iterator(root))
    if (e.path().extension() == ".tmp" || e.path().extension() == ".del") fs::remove_all(e.path());
  // Retention: the newest keep_last complete checkpoints stay, and the protected ones.
  if (keep_last > 0) {
    auto all = complete_checkpoints(root);
    for (size_t i = 0; i + static_cast<size_t>(keep_last) < all.size(); ++i) {
      bool keep = same_folder(all[i], final_dir);
      for (const std::string& p : protect) keep = keep || same_folder(all[i], p);
      if (!keep) retire(all[i]);
    }
  }
  return final_dir.string();
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::string> out;
  for (auto& p : complete_checkpoints(fs::path(run_dir) / "checkpoints")) out.push_back(p.string());
  return out;
}

std::optional<std::string> latest_checkpoint(const std::string& run_dir) {
  auto all = list_checkpoints(run_dir);
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::vector<std::string> checkpoints_after(const std::string& run_dir, int64_t step) {
  std::vector<std::string> out;
  for (auto& p : step_folders(fs::path(run_dir) / "checkpoints"))
    if (step_of(p) > step) out.push_back(p.string());
  return out;
}

TrainState verify_checkpoint(const std::string& ckpt_dir) {
  const fs::path dir(ckpt_dir);
  StateFile sf = read_state(dir);
  as_checkpoint_error([&] {
    auto w = nn::read_safetensors((dir / "weights.safetensors").string());
    check_weights_step(dir, w.metadata, sf.state);
    auto o = nn::read_safetensors((dir / "optimizer.safetensors").string());
    if (sf.state.verified && !o.verified)
      throw CheckpointError((dir / "optimizer.safetensors").string() + ": has no checksums: the file is corrupt");
  });
  return sf.state;
}

TrainState load_checkpoint(const std::string& ckpt_dir, const nn::ParameterBuffer& params, optim::AdamW& opt,
                           const std::function<void(const std::string&, const TrainState&)>& check_state) {
  const fs::path dir(ckpt_dir);
  StateFile sf = read_state(dir);
  if (check_state) check_state(ckpt_dir, sf.state);
  // The optimizer state is read (and verified) whole first, and the weights verified before they
  // are written, so a corrupt checkpoint leaves the model and optimizer untouched.
  as_checkpoint_error([&] {
    const fs::path opt_path = dir / "optimizer.safetensors";
    auto m = nn::read_safetensors(opt_path.string());
    if (sf.state.verified && !m.verified)
      throw CheckpointError(opt_path.string() + ": has no checksums: the file is corrupt");
    optim::AdamWState st;
    st.step = sf.j.at("optimizer_step").get<int64_t>();
    for (auto& [name, t] : m.tensors) {
      if (name == "exp_avg")
        st.exp_avg = t;
      else if (name == "exp_avg_sq")
        st.exp_avg_sq = t;
    }
    if (!st.exp_avg.defined() || !st.exp_avg_sq.defined())
      throw CheckpointError(opt_path.string() + ": missing exp_avg or exp_avg_sq");
    const fs::path w = dir / "weights.safetensors";
    if (sf.state.verified) {
      // The step in the weights' metadata, from the header alone (the load below verifies data).
      const auto meta = nn::read_safetensors_metadata(w.string());
      check_weights_step(dir, meta, sf.state);
    }
    params.load(w.string());
    opt.load_state(st);
  });
  return sf.state;
}

std::optional<LoadedCheckpoint> load_latest_checkpoint(
    const std::string& run_dir, const nn::ParameterBuffer& params, optim::AdamW& opt,
    const std::function<void(const std::string&)>& warn,
    const std::function<void(const std::string&, const TrainState&)>& check_state) {
  const auto all = list_checkpoints(run_dir);
  if (all.empty()) return std::nullopt;
  std::vector<std::pair<std::string, std::string>> refused;  // folder, reason
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      TrainState s = load_checkpoint(*it, params, opt, check_state);
      for (auto& [dir, why] : refused)
        warn("warning: refusing checkpoint " + dir + " (" + why + "); resuming from " + *it +
             ", the previous complete checkpoint");
      return LoadedCheckpoint{*it, std::move(s)};
    } catch (const CheckpointError& e) {
      refused.emplace_back(*it, e.what());
    }
  }
  std::string msg = "no checkpoint in " + (fs::path(run_dir) / "checkpoints").string() + " loads (" +
                    std::to_string(all.size()) + " tried; the newest, " + refused.front().first + ": " +
                    refused.front().second + ")";
  throw CheckpointError(msg);
}

}  // namespace sparrow::train
