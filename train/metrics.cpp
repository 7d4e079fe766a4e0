#include "train/metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "framework/core/atomic_file.h"

namespace fs = std::filesystem;

namespace sparrow::train {

namespace {

// Rewrites the log without the records past resume_step (and without a torn last line), if it
// holds any; returns the dropped whole lines.
std::vector<std::string> drop_records_after(const std::string& path, int64_t resume_step) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw MetricsError("cannot read " + path + " (" + std::strerror(errno) + ")");
  std::stringstream all;
  all << in.rdbuf();
  const std::string text = all.str();
  std::string keep;
  std::vector<std::string> dropped;
  bool changed = false;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) {  // a torn last line from a killed run
      changed = true;
      break;
    }
    const std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    int64_t step = 0;
    try {
      step = nlohmann::json::parse(line).value("step", int64_t{0});
    } catch (const std::exception&) {
      changed = true;  // not a record: dropped
      continue;
    }
    if (step <= resume_step) {
      keep += line + '\n';
    } else {
      dropped.push_back(line);
      changed = true;
    }
  }
  if (changed) {
    try {
      write_file_atomically(path, keep);
    } catch (const std::exception& e) {
      throw MetricsError(e.what());
    }
  }
  return dropped;
}

}  // namespace

MetricsLog::MetricsLog(const std::string& run_dir, int64_t resume_step, const std::string& keep_dropped_in)
    : path_((fs::path(run_dir) / "metrics.jsonl").string()) {
  std::error_code ec;
  if (fs::is_regular_file(path_, ec)) {
    std::vector<std::string> dropped = drop_records_after(path_, resume_step);
    if (!keep_dropped_in.empty() && !dropped.empty()) {
      std::string text;
      for (auto& l : dropped) text += l + '\n';
      try {
        write_file_atomically((fs::path(keep_dropped_in) / "metrics.jsonl").string(), text);
      } catch (const std::exception& e) {
        throw MetricsError(e.what());
      }
    }
  }
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw MetricsError("cannot write " + path_ + " (" + std::strerror(errno) + ")");
}

MetricsLog::~MetricsLog() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsLog::write(const nlohmann::json& record) {
  // One write() per line: with O_APPEND it lands whole at the end of the file.
  const std::string line = record.dump() + '\n';
  const char* p = line.data();
  size_t n = line.size();
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      throw MetricsError("cannot write " + path_ + " (" + (w < 0 ? std::strerror(errno) : "no progress") +
                         "): stopping the run rather than training without a log");
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void MetricsLog::sync() {
  // fsync of a pipe or device may not be supported (EINVAL): only files need it.
  if (::fsync(fd_) != 0 && errno != EINVAL && errno != EROFS)
    throw MetricsError("cannot write " + path_ + ": fsync failed (" + std::strerror(errno) + ")");
}

}  // namespace sparrow::train
