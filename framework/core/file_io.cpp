#include "framework/core/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "framework/core/error.h"

namespace sparrow {

namespace {

// Closes the descriptor on every path out of read_small_file.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// "16 MiB" for whole MiB, else "300 bytes".
std::string size_text(uint64_t bytes) {
  if (bytes > 0 && bytes % (1 << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

}  // namespace

std::string read_small_file(const std::string& path, uint64_t max_bytes, const char* what) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) fail(path, ": cannot open the ", what, " (", std::strerror(errno), ")");
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) fail(path, ": cannot stat the ", what, " (", std::strerror(errno), ")");
  if (S_ISDIR(st.st_mode)) fail(path, ": is a directory, not a ", what);
  if (!S_ISREG(st.st_mode)) fail(path, ": is not a regular file (a ", what, " must be one)");
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    fail(path, ": the ", what, " is ", st.st_size, " bytes, over the limit of ", size_text(max_bytes));
  // Read to the end whatever st_size says: /proc files report 0 and still have contents.
  std::string text;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(f.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(path, ": cannot read the ", what, " (", std::strerror(errno), ")");
    if (n == 0) break;
    if (text.size() + static_cast<uint64_t>(n) > max_bytes)
      fail(path, ": the ", what, " is over the limit of ", size_text(max_bytes));
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

void write_whole_file(const std::string& path, std::string_view bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) fail(path, ": cannot open for writing (", std::strerror(errno), ")");
  const size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f);
  const int write_errno = errno;
  // The flush is where a full device (/dev/full, a full disk) reports: buffered writes succeed.
  const bool flushed = written == bytes.size() && std::fflush(f) == 0;
  const int flush_errno = errno;
  const bool closed = std::fclose(f) == 0;
  if (written != bytes.size()) fail(path, ": write failed (", std::strerror(write_errno), ")");
  if (!flushed) fail(path, ": write failed (", std::strerror(flush_errno), ")");
  if (!closed) fail(path, ": write failed on close (", std::strerror(errno), ")");
}

}  // namespace sparrow
