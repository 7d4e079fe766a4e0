#include "train/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "framework/core/atomic_file.h"

namespace fs = std::filesystem;

namespace sparrow::train {

RunFolderLock::RunFolderLock(const std::string& run_dir) {
  const std::string path = (fs::path(run_dir) / ".lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw RunFolderError("cannot open " + path + " to lock the run folder (" + std::strerror(errno) + ")");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {};
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK) throw RunFolderError("cannot lock " + path + " (" + std::strerror(err) + ")");
    std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    throw RunFolderError("run folder " + run_dir + " is in use by another trainer (" +
                         (pid.empty() ? "pid unknown" : "pid " + pid) + " holds " + path +
                         "); wait for it to finish or pass another --out");
  }
  const std::string me = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
    // The pid is a courtesy for the error above; the lock itself holds without it.
  }
}

RunFolderLock::~RunFolderLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

std::string move_aside(const std::string& run_dir, const std::vector<std::string>& folders) {
  if (folders.empty()) return "";
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  const fs::path parent = fs::path(run_dir) / "abandoned";
  fs::path dest = parent / stamp;
  for (int i = 1; fs::exists(dest); ++i) dest = parent / (std::string(stamp) + "." + std::to_string(i));
  fs::create_directories(dest);
  for (const std::string& f : folders) fs::rename(f, dest / fs::path(f).filename());
  fsync_path(dest.string());
  fsync_path((fs::path(run_dir) / "checkpoints").string());
  return dest.string();
}

}  // namespace sparrow::train
