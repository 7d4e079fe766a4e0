#include "train/metrics.h"

#include <filesystem>
#include <sstream>
#include <vector>

namespace sparrow::train {

MetricsLog::MetricsLog(const std::string& run_dir, int64_t resume_step) {
  const std::string path = run_dir + "/metrics.jsonl";
  std::vector<std::string> keep;
  if (resume_step > 0 && std::filesystem::exists(path)) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      try {
        auto j = nlohmann::json::parse(line);
        if (j.value("step", int64_t{0}) <= resume_step) keep.push_back(line);
      } catch (const std::exception&) {
        // a torn last line from a killed run: drop it
      }
    }
  }
  out_.open(path, std::ios::trunc);
  if (!out_) throw std::runtime_error("cannot write " + path);
  for (auto& l : keep) out_ << l << '\n';
  out_.flush();
}

void MetricsLog::write(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
}

}  // namespace sparrow::train
