#include "train/resume_check.h"

#include <sstream>
#include <vector>

namespace sparrow::train {

namespace {

// The keys of `cfg` that a resume must keep: the model and what the data is.
Config resume_relevant(const Config& base, const Config& from) {
  Config c = base;
  c.model = from.model;
  c.data.source = from.data.source;
  c.data.val_fraction = from.data.val_fraction;
  c.data.doc_bytes = from.data.doc_bytes;
  c.data.synthetic = from.data.synthetic;
  return c;
}

// "section.key: value" lines of a config's YAML (nested keys joined by their section's name).
std::vector<std::string> flat_lines(const Config& c) {
  std::vector<std::string> out;
  std::istringstream in(to_yaml(c));
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line[0] != ' ') {
      section = line.substr(0, line.find(':'));
      continue;
    }
    out.push_back(section + "." + line.substr(line.find_first_not_of(' ')));
  }
  return out;
}

}  // namespace

nlohmann::json run_record(const Config& cfg) { return {{"config", to_yaml(cfg)}}; }

void check_resumable(const Config& cfg, const TrainState& state, const std::string& ckpt_dir) {
  if (!state.extra.is_object() || !state.extra.contains("config") || !state.extra["config"].is_string()) return;
  Config recorded;
  try {
    recorded = load_config_text(state.extra["config"].get<std::string>(), ckpt_dir + "/state.json");
  } catch (const ConfigError& e) {
    throw ConfigError("checkpoint " + ckpt_dir + ": its recorded configuration does not load (" + e.what() + ")");
  }
  const Config theirs = resume_relevant(cfg, recorded);
  if (theirs == cfg) return;
  const std::vector<std::string> a = flat_lines(theirs), b = flat_lines(cfg);
  std::string diff = "model or data";
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    if (a[i] != b[i]) {
      diff = a[i] + " there but " + b[i] + " here";
      break;
    }
  throw ConfigError("checkpoint " + ckpt_dir + " belongs to another run (" + diff +
                    "); resuming needs the same model and data: use a new --out to start over");
}

}  // namespace sparrow::train
