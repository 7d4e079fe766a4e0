// metrics.jsonl: one JSON object per line, appended and flushed as each step ends, so a run
// that stops at any point leaves a readable log (and a resumed run continues the same file).
#pragma once
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace sparrow::train {

class MetricsLog {
 public:
  // Opens <run_dir>/metrics.jsonl. When resuming from step k, lines for steps > k (written after
  // the checkpoint by the interrupted run) are dropped so the log matches the resumed history.
  MetricsLog(const std::string& run_dir, int64_t resume_step);
  void write(const nlohmann::json& record);

 private:
  std::ofstream out_;
};

}  // namespace sparrow::train
