#include "train/progress.h"

#include <unistd.h>

#include <cstdio>

namespace sparrow::train {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", b, units[u]);
  return buf;
}

std::string human_duration(double s) {
  char buf[32];
  if (s < 0 || s != s) return "?";
  long t = static_cast<long>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  return buf;
}

Progress::Progress(int64_t total, bool force_plain, bool quiet)
    : total_(total), tty_(!force_plain && isatty(STDOUT_FILENO)), quiet_(quiet) {}

void Progress::update(int64_t step, double loss, double tps, double sec_per_step, double mem, double peak,
                      const std::string& extra) {
  if (quiet_) return;
  char buf[256];
  double eta = sec_per_step * static_cast<double>(total_ - step);
  std::snprintf(buf, sizeof buf, "step %lld/%lld  loss %.4f  %.0f tok/s  ETA %s  mem %s (peak %s)",
                static_cast<long long>(step), static_cast<long long>(total_), loss, tps, human_duration(eta).c_str(),
                human_bytes(mem).c_str(), human_bytes(peak).c_str());
  std::string line = buf;
  if (!extra.empty()) line += "  " + extra;
  if (tty_) {
    std::printf("\r\033[2K%s", line.c_str());
    line_open_ = true;
  } else {
    std::printf("%s\n", line.c_str());
  }
  std::fflush(stdout);
}

void Progress::message(const std::string& line) {
  if (quiet_) return;
  if (tty_ && line_open_) std::printf("\r\033[2K");
  std::printf("%s\n", line.c_str());
  line_open_ = false;
  std::fflush(stdout);
}

void Progress::finish() {
  if (quiet_) return;
  if (tty_ && line_open_) std::printf("\n");
  line_open_ = false;
  std::fflush(stdout);
}

}  // namespace sparrow::train
