#include "train/plot/runs.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "framework/core/error.h"

namespace fs = std::filesystem;

namespace sparrow::plot {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double number(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : kNaN;
}

std::optional<double> optional_number(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return std::nullopt;
  return it->is_number() ? it->get<double>() : kNaN;  // null: an eval that gave a non-finite value
}

// The folder's own name, also for "runs/x/" and "." forms.
std::string folder_name(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (p.has_filename() == false) p = p.parent_path();
  std::string name = p.filename().string();
  if (name.empty() || name == "." || name == "..") name = fs::absolute(p).lexically_normal().filename().string();
  return name.empty() ? dir : name;
}

}  // namespace

std::string Run::label() const { return backend.empty() ? name : name + " (" + backend + ")"; }

std::string read_backend(const std::string& config_path) {
  if (!fs::exists(config_path)) return "";
  try {
    const YAML::Node root = YAML::LoadFile(config_path);
    const YAML::Node att = root["attention"];
    if (!att || !att.IsMap() || !att["backend"]) return "";
    const std::string base = att["backend"].as<std::string>();
    std::string out = base;
    if (att["layers"] && att["layers"].IsMap())
      for (const auto& kv : att["layers"]) {
        const YAML::Node layer = kv.second;
        if (layer.IsMap() && layer["backend"] && layer["backend"].as<std::string>() != base)
          out += "; layer " + kv.first.as<std::string>() + " " + layer["backend"].as<std::string>();
      }
    return out;
  } catch (const YAML::Exception&) {
    return "";  // a hand-edited, broken config: the legend shows the folder name alone
  }
}

Run read_run(const std::string& dir) {
  Run run;
  run.dir = dir;
  run.name = folder_name(dir);
  const std::string path = (fs::path(dir) / "metrics.jsonl").string();
  SPARROW_CHECK(fs::is_regular_file(path), "plot: no metrics.jsonl in ", dir, " (", path,
                " is missing; is it a run folder written by build/bin/train?)");
  std::ifstream in(path);
  SPARROW_CHECK(in.good(), "plot: cannot read ", path);

  std::map<int64_t, MetricsRecord> by_step;  // a step written twice (a resumed run): the last wins
  std::string line;
  std::vector<std::string> attention_backends;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number()) {
      ++run.skipped_lines;  // torn (a run killed mid-write) or not a metrics record
      continue;
    }
    MetricsRecord r;
    r.step = j["step"].get<int64_t>();
    r.loss = number(j, "loss");
    r.lr = number(j, "lr");
    r.grad_norm = number(j, "grad_norm");
    r.tokens_per_s = number(j, "tokens_per_s");
    r.ms = number(j, "ms");
    r.memory_bytes = number(j, "memory_bytes");
    if (auto d = j.find("density"); d != j.end() && d->is_array())
      for (const auto& v : *d) r.density.push_back(v.is_number() ? v.get<double>() : kNaN);
    r.val_loss = optional_number(j, "val_loss");
    r.val_bpb = optional_number(j, "val_bpb");
    if (auto a = j.find("attention"); a != j.end() && a->is_array()) {
      attention_backends.clear();
      for (const auto& v : *a)
        if (v.is_string()) attention_backends.push_back(v.get<std::string>());
    }
    by_step[r.step] = std::move(r);
  }
  for (auto& [step, r] : by_step) run.records.push_back(std::move(r));

  run.backend = read_backend((fs::path(dir) / "config.yaml").string());
  if (run.backend.empty() && !attention_backends.empty()) {
    // No readable config: the per-layer backends the metrics name, each once, in layer order.
    std::vector<std::string> seen;
    for (const auto& b : attention_backends)
      if (std::find(seen.begin(), seen.end(), b) == seen.end()) seen.push_back(b);
    for (size_t i = 0; i < seen.size(); ++i) run.backend += (i ? "+" : "") + seen[i];
  }
  return run;
}

void make_names_unique(std::vector<Run>& runs) {
  std::map<std::string, int> count;
  for (const Run& r : runs) ++count[r.name];
  for (Run& r : runs)
    if (count[r.name] > 1) {
      const fs::path p = fs::absolute(fs::path(r.dir)).lexically_normal();
      const fs::path folder = p.has_filename() ? p : p.parent_path();
      r.name = folder.parent_path().filename().string() + "/" + folder.filename().string();
    }
}

}  // namespace sparrow::plot
