// The `train` program given hostile config input: one line naming the file (and line:column
// where there is one), exit status 2, never an abort — including when the config parser itself
// runs out of memory.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/paths.h"

namespace fs = std::filesystem;

namespace {

std::string bin() { return sparrow::testing::bin_dir() + "/train"; }

struct Result {
  int status;  // the exit status, or -1 when killed by a signal
  std::string out;
};

Result sh(const std::string& cmd) {
  Result r{0, ""};
  FILE* p = popen(("(" + cmd + ") 2>&1").c_str(), "r");
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), p)) r.out += buf.data();
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// The one line a refused config prints, for `train --config path`.
void expect_config_error(const std::string& path, const std::string& message) {
  Result r = sh("timeout 60 " + bin() + " --config " + path);
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_EQ(r.out, "train: " + message + "\n");
}

std::string temp_file(const std::string& name, const std::string& text) {
  const std::string path =
      (fs::temp_directory_path() / ("sparrow_input_cli_" + name + "_" + std::to_string(::getpid()) + ".yaml")).string();
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST(TrainInputCli, DevZeroIsRefusedNotReadForever) {
  expect_config_error("/dev/zero", "/dev/zero: is not a regular file (a config file must be one)");
}

TEST(TrainInputCli, UnreadableAndEmptyConfigsAreErrors) {
  expect_config_error("/proc/self/mem", "/proc/self/mem: cannot read the config file (Input/output error)");
  const std::string empty = temp_file("empty", "");
  expect_config_error(
      empty, empty + ": the config is empty (an empty file is not a run description: give at least one section)");
  fs::remove(empty);
  // A directory is refused by the command line's own check.
  Result r = sh(bin() + " --config " + fs::temp_directory_path().string());
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find(fs::temp_directory_path().string()), std::string::npos) << r.out;
}

TEST(TrainInputCli, RepeatedKeyAndNonFiniteValueNameFileLineColumn) {
  const std::string dup = temp_file("dup", "optim:\n  lr: 0.001\n  lr: 0.1\n");
  expect_config_error(dup, dup + ":3:3: key 'optim.lr' is given twice (first at line 2)");
  fs::remove(dup);
  const std::string inf = temp_file("inf", "model:\n  rope_base: .inf\n");
  expect_config_error(inf, inf + ":2:14: key 'model.rope_base' must be a finite number, got inf");
  fs::remove(inf);
  const std::string window =
      temp_file("window", "attention:\n  backend: block_sparse\n  pattern:\n    window: 9223372036854775806\n");
  expect_config_error(window, window +
                                  ":4:13: key 'attention.pattern.window' must be <= 2147483647 (2^31 - 1, the "
                                  "largest integer a key takes), got 9223372036854775806");
  fs::remove(window);
}

// gcc says __SANITIZE_ADDRESS__, clang __has_feature(address_sanitizer).
#if defined(__SANITIZE_ADDRESS__)
#define SPARROW_TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPARROW_TEST_UNDER_ASAN 1
#endif
#endif

TEST(TrainInputCli, ConfigTooLargeForMemoryIsOneLineNotAnAbort) {
#ifdef SPARROW_TEST_UNDER_ASAN
  GTEST_SKIP() << "AddressSanitizer maps terabytes of shadow memory: a memory cap stops the sanitized "
                  "program before it reads the config (the plain builds run this test)";
#endif
  // 12 MB of YAML list (under the 16 MiB file cap) needs far more than 400 MB as a YAML tree:
  // the parser's std::bad_alloc used to end the program with SIGABRT.
  const std::string path = temp_file("big", "");
  {
    std::ofstream out(path);
    out << "model:\n  n_layers:\n";
    for (int i = 0; i < 1'500'000; ++i) out << "    - 1\n";
  }
  // The data limit (heap and private mappings), not the address-space one: a CUDA build maps
  // gigabytes of library code (cuBLASLt, cuDNN) that `ulimit -v` would refuse before main.
  Result r = sh("ulimit -d 400000; " + bin() + " --config " + path);
  fs::remove(path);
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_EQ(r.out, "train: " + path + ": out of memory reading the config\n");
}
