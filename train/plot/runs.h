// A training run as the plotter sees it: the records of <run>/metrics.jsonl and the attention
// backend named in <run>/config.yaml.
#pragma once
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace sparrow::plot {

// One line of metrics.jsonl. Values the line lacks (or holds as null: a non-finite number) are NaN.
struct MetricsRecord {
  static constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();
  int64_t step = 0;
  double loss = kMissing, lr = kMissing, grad_norm = kMissing, tokens_per_s = kMissing, ms = kMissing,
         memory_bytes = kMissing;
  std::vector<double> density;              // per layer
  std::optional<double> val_loss, val_bpb;  // eval steps only
};

struct Run {
  std::string dir;                     // as given on the command line
  std::string name;                    // the folder's name (parent/name where two runs share a name)
  std::string backend;                 // attention backend from config.yaml ("" when it cannot be read)
  std::vector<MetricsRecord> records;  // ascending step, one per step (the last line wins)
  int64_t skipped_lines = 0;           // torn or unreadable lines left out

  // Legend text: "name (backend)", or the name alone when the backend is unknown.
  std::string label() const;
};

// Reads a run folder. A missing or unreadable metrics.jsonl throws sparrow::Error with one line
// naming it; torn lines (a run killed mid-write) are skipped and counted.
Run read_run(const std::string& dir);
// The attention section's backend in a config.yaml, with per-layer overrides that change it
// appended ("adaptive; layer 3 dense"); "" when the file is missing or has none.
std::string read_backend(const std::string& config_path);
// Runs given as a/x and b/x both get the name x: call them a/x and b/x instead.
void make_names_unique(std::vector<Run>& runs);

}  // namespace sparrow::plot
