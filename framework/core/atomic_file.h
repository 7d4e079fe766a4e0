// Replacing a file so that a crash at any moment (kill -9, power cut) leaves either the old
// contents or the new ones whole, never a torn or empty file: the bytes go to a temp file in the
// same folder (.<name>.tmp.<pid>), which is fsynced, renamed over the final name, and then the
// folder is fsynced so the rename itself is durable. The one way Sparrow replaces a file
// (safetensors, checkpoint state, metrics rewrites, the run's resolved config).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace sparrow {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // creates the temp file; throws Error naming path
  ~AtomicFile();                          // not committed: the temp file is removed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Every write is checked (a full disk or an I/O error throws Error naming the file and reason).
  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  // fsync, rename over the final name, fsync the folder.
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

void write_file_atomically(const std::string& path, std::string_view contents);

// fsync of a file or folder (a folder: so that renames and creations in it are durable).
void fsync_path(const std::string& path);

// Whether `filename` is an AtomicFile temp name; remove_stale_temp_files deletes those in `dir`
// left by killed processes. Only for a caller that knows no other writer is at work there (the
// trainer holds the run-folder lock).
bool is_atomic_temp_name(const std::string& filename);
void remove_stale_temp_files(const std::string& dir);

}  // namespace sparrow
