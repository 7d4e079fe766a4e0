// A read-only memory map of a whole file (POSIX mmap): the token cache is read this way, so a
// corpus of gigabytes costs page cache, not heap, and opens instantly on later runs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sparrow::train {

class MappedFile {
 public:
  MappedFile() = default;
  // Throws sparrow::Error naming the path when the file cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept { *this = std::move(o); }
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void close();
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace sparrow::train
