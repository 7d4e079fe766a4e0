// The run folder as one trainer's property: a lock that keeps a second trainer out, and the
// place where checkpoints of an abandoned trajectory are moved aside (never deleted).
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

namespace sparrow::train {

struct RunFolderError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// flock(LOCK_EX) on <run>/.lock, held until destruction (the trainer holds it for the whole run).
// The holder's pid is written into the file so that a refused trainer can name it. The kernel
// drops the lock when the process dies however it dies, so a killed run never leaves a stale one.
class RunFolderLock {
 public:
  // Throws RunFolderError naming the folder (and the holder's pid when known) if it is taken.
  explicit RunFolderLock(const std::string& run_dir);
  ~RunFolderLock();
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;

 private:
  int fd_ = -1;
};

// Moves `folders` (checkpoints past the resume step) into a new <run>/abandoned/<timestamp>/,
// where --resume auto never looks; returns that folder ("" when `folders` is empty).
std::string move_aside(const std::string& run_dir, const std::vector<std::string>& folders);

}  // namespace sparrow::train
