#include "train/resume_check.h"

#include <sstream>
#include <vector>

namespace sparrow::train {

namespace {

// What a resume must keep: the model and what the data is (section-qualified key prefixes).
const char* const kResumeKeys[] = {"model.",
                                   "data.source:", "data.val_fraction:", "data.doc_bytes:", "data.synthetic."};

bool resume_relevant(const std::string& flat) {
  for (const char* k : kResumeKeys)
    if (flat.rfind(k, 0) == 0) return true;
  return false;
}

// The resume-relevant "section.key: value" lines of a resolved config's YAML (to_yaml's layout:
// sections at column 0, their keys indented, nested sections named on their own line). Read as
// text, not loaded: a checkpoint written under looser validation (an older Sparrow) must still
// be compared, not refused because its values no longer pass today's ranges.
std::vector<std::string> resume_lines(const std::string& yaml) {
  std::vector<std::string> out;
  std::istringstream in(yaml);
  std::string line;
  std::vector<std::pair<size_t, std::string>> path;  // (indent, name) of the open sections
  while (std::getline(in, line)) {
    const size_t indent = line.find_first_not_of(' ');
    if (indent == std::string::npos || line[indent] == '#') continue;
    while (!path.empty() && path.back().first >= indent) path.pop_back();
    const std::string body = line.substr(indent);
    const size_t colon = body.find(':');
    if (colon == std::string::npos) continue;
    std::string prefix;
    for (const auto& p : path) prefix += p.second + ".";
    if (colon + 1 == body.size()) {  // "name:" opens a section
      path.emplace_back(indent, body.substr(0, colon));
      continue;
    }
    const std::string flat = prefix + body;
    if (resume_relevant(flat)) out.push_back(flat);
  }
  return out;
}

}  // namespace

nlohmann::json run_record(const Config& cfg) { return {{"config", to_yaml(cfg)}}; }

void check_resumable(const Config& cfg, const TrainState& state, const std::string& ckpt_dir) {
  if (!state.extra.is_object() || !state.extra.contains("config") || !state.extra["config"].is_string()) return;
  const std::vector<std::string> theirs = resume_lines(state.extra["config"].get<std::string>()),
                                 ours = resume_lines(to_yaml(cfg));
  if (theirs == ours) return;
  std::string diff = "model or data";
  for (size_t i = 0; i < std::max(theirs.size(), ours.size()); ++i) {
    const std::string a = i < theirs.size() ? theirs[i] : "(nothing)", b = i < ours.size() ? ours[i] : "(nothing)";
    if (a != b) {
      diff = a + " there but " + b + " here";
      break;
    }
  }
  throw ConfigError("checkpoint " + ckpt_dir + " belongs to another run (" + diff +
                    "); resuming needs the same model and data: use a new --out to start over");
}

std::optional<int64_t> trained_seq_len(const TrainState& state, const std::string& ckpt_dir) {
  if (!state.extra.is_object() || !state.extra.contains("config") || !state.extra["config"].is_string())
    return std::nullopt;
  try {
    return load_config_text(state.extra["config"].get<std::string>(), ckpt_dir + "/state.json").train.seq_len;
  } catch (const ConfigError&) {
    return std::nullopt;
  }
}

}  // namespace sparrow::train
