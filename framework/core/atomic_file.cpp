#include "framework/core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>

#include "framework/core/error.h"

namespace fs = std::filesystem;

namespace sparrow {

namespace {
std::string folder_of(const std::string& path) {
  fs::path dir = fs::path(path).parent_path();
  return dir.empty() ? "." : dir.string();
}
}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  // Built by appends: GCC 12 warns falsely (-Wrestrict) on "." + std::string.
  std::string name(1, '.');
  name.append(fs::path(path_).filename().string()).append(".tmp.").append(std::to_string(::getpid()));
  tmp_ = (fs::path(folder_of(path_)) / name).string();
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  SPARROW_CHECK(fd_ >= 0, "cannot write ", path_, ": cannot create ", tmp_, " (", std::strerror(errno), ")");
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t n) {
  SPARROW_CHECK(fd_ >= 0, "cannot write ", path_, ": already committed");
  const char* c = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, c, n);
    if (w < 0 && errno == EINTR) continue;
    SPARROW_CHECK(w > 0, "cannot write ", path_, " (", w < 0 ? std::strerror(errno) : "no progress", ")");
    c += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  SPARROW_CHECK(fd_ >= 0, "cannot write ", path_, ": already committed");
  if (::fsync(fd_) != 0) fail("cannot write ", path_, ": fsync failed (", std::strerror(errno), ")");
  // close() can report a deferred write error (NFS, some full-disk cases): check it too.
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    fail("cannot write ", path_, ": close failed (", std::strerror(err), ")");
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    fail("cannot write ", path_, ": rename from ", tmp_, " failed (", std::strerror(err), ")");
  }
  fsync_path(folder_of(path_));
}

void write_file_atomically(const std::string& path, std::string_view contents) {
  AtomicFile f(path);
  f.write(contents);
  f.commit();
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  SPARROW_CHECK(fd >= 0, "cannot open ", path, " to sync it (", std::strerror(errno), ")");
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  SPARROW_CHECK(rc == 0, "fsync failed on ", path, " (", std::strerror(err), ")");
}

bool is_atomic_temp_name(const std::string& filename) {
  static const std::regex re(R"(\..+\.tmp\.[0-9]+)");
  return std::regex_match(filename, re);
}

void remove_stale_temp_files(const std::string& dir) {
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file(ec) && is_atomic_temp_name(e.path().filename().string())) fs::remove(e.path(), ec);
}

}  // namespace sparrow
