// read_small_file / write_whole_file: every way a small file can fail to be read or written is
// one line naming the path and the reason; nothing that is not a regular file is read, nothing
// over the cap is kept, and a write is checked through its final flush and close.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "framework/core/error.h"
#include "framework/core/file_io.h"

namespace fs = std::filesystem;
using namespace sparrow;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("sparrow_file_io_" + name + "_" + std::to_string(::getpid()))).string();
}

}  // namespace

TEST(ReadSmallFile, ReadsARegularFile) {
  const std::string p = temp_path("ok");
  std::ofstream(p) << "abc\n";
  EXPECT_EQ(read_small_file(p, 4, "test file"), "abc\n");
  EXPECT_EQ(error_of([&] { read_small_file(p, 3, "test file"); }),
            p + ": the test file is 4 bytes, over the limit of 3 bytes");
  fs::remove(p);
}

TEST(ReadSmallFile, RefusesWhatIsNotARegularFile) {
  EXPECT_EQ(error_of([] { read_small_file("/dev/zero", 1 << 20, "test file"); }),
            "/dev/zero: is not a regular file (a test file must be one)");
  EXPECT_EQ(error_of([] { read_small_file("/", 1 << 20, "test file"); }), "/: is a directory, not a test file");
  EXPECT_EQ(error_of([] { read_small_file("/nonexistent/x", 1 << 20, "test file"); }),
            "/nonexistent/x: cannot open the test file (No such file or directory)");
  EXPECT_EQ(error_of([] { read_small_file("/proc/self/mem", 1 << 20, "test file"); }),
            "/proc/self/mem: cannot read the test file (Input/output error)");
}

TEST(ReadSmallFile, CapHoldsForFilesThatReportNoSize) {
  // /proc files report size 0: the cap is enforced on what is read, not on st_size alone.
  EXPECT_EQ(error_of([] { read_small_file("/proc/self/maps", 16, "test file"); }),
            "/proc/self/maps: the test file is over the limit of 16 bytes");
}

TEST(WriteWholeFile, FullDeviceAndMissingFolderAreErrors) {
  EXPECT_EQ(error_of([] { write_whole_file("/dev/full", "some bytes"); }),
            "/dev/full: write failed (No space left on device)");
  EXPECT_EQ(error_of([] { write_whole_file("/nonexistent_dir/x", "some bytes"); }),
            "/nonexistent_dir/x: cannot open for writing (No such file or directory)");
  const std::string p = temp_path("write");
  write_whole_file(p, std::string("a\0b", 3));
  EXPECT_EQ(read_small_file(p, 3, "test file"), std::string("a\0b", 3));
  fs::remove(p);
}
