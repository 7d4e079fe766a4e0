// metrics.jsonl: one JSON object per line, appended as each step ends, so a run that stops at any
// point leaves a readable log (and a resumed run continues the same file).
//
// Append-only: each record is one checked write() of a whole line to a file opened O_APPEND, so
// a failure (full disk, EIO) stops the run with MetricsError naming the file instead of the log
// going quiet. The one rewrite, dropping records past the resume step, replaces the file
// atomically (framework/core/atomic_file.h): a kill at any moment leaves the old log or the new.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace sparrow::train {

struct MetricsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class MetricsLog {
 public:
  // Opens <run_dir>/metrics.jsonl. Records for steps > resume_step (written after the checkpoint
  // by an interrupted run, or by an abandoned trajectory) and a torn last line are dropped first,
  // so the log matches the resumed history; with `keep_dropped_in` set, the dropped whole records
  // are kept in <keep_dropped_in>/metrics.jsonl. A metrics.jsonl that is not a regular file (a
  // pipe, a device) is appended to as it is.
  MetricsLog(const std::string& run_dir, int64_t resume_step, const std::string& keep_dropped_in = "");
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void write(const nlohmann::json& record);  // throws MetricsError naming the file and the reason
  // fsync: the records so far survive a power cut (the trainer calls it with each checkpoint).
  void sync();

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace sparrow::train
