// The `train` program and its run folder under hostile conditions: a full disk under
// metrics.jsonl stops the run with one line naming the file; a second trainer on a busy run
// folder is refused with one line naming the folder and the holder's pid; a corrupt checkpoint
// named by --resume fails with one line naming the file and the tensor.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/paths.h"

namespace fs = std::filesystem;

namespace {

std::string train_cmd(const fs::path& dir, const std::string& more) {
  std::string c = sparrow::testing::bin_dir() + "/train --config " + sparrow::testing::source_dir() +
                  "/configs/tiny.yaml --out " + dir.string() +
                  " --set train.device=cpu --set eval.every=0 --set schedule.warmup_steps=1";
  for (const std::string& o : sparrow::testing::data_overrides()) c += " --set " + o;
  return c + " " + more;
}

struct Result {
  int status;
  std::string out;  // stderr only (stdout to /dev/null): the error lines
};

Result sh(const std::string& cmd) {
  Result r{0, ""};
  FILE* p = popen(("OMP_NUM_THREADS=1 " + cmd + " 2>&1 >/dev/null").c_str(), "r");
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), p)) r.out += buf.data();
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

fs::path fresh_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("sparrow_cli_rf_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p;
}

}  // namespace

TEST(TrainCliRunFolder, AFullDiskUnderTheMetricsStopsTheRunNamingTheFile) {
  fs::path dir = fresh_dir("full");
  fs::create_directories(dir);
  fs::create_symlink("/dev/full", dir / "metrics.jsonl");  // every write: ENOSPC
  Result r = sh(train_cmd(dir, "--set train.steps=20"));
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_EQ(count_lines(r.out), 1) << r.out;
  EXPECT_NE(r.out.find((dir / "metrics.jsonl").string()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("No space left on device"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

TEST(TrainCliRunFolder, ASecondTrainerIsRefusedNamingTheFolderAndTheHoldersPid) {
  fs::path dir = fresh_dir("busy");
  pid_t first = fork();
  ASSERT_GE(first, 0);
  if (first == 0) {
    execl("/bin/sh", "sh", "-c",
          ("exec " + train_cmd(dir, "--set train.steps=100000 --set checkpoint.every=0") + " >/dev/null 2>&1").c_str(),
          (char*)nullptr);
    _exit(127);
  }
  // Wait until the first trainer is under way (its log has a record).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream f(dir / "metrics.jsonl");
    std::string line;
    if (std::getline(f, line) && !line.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Result r = sh(train_cmd(dir, "--set train.steps=10 --resume auto"));
  kill(first, SIGKILL);
  waitpid(first, nullptr, 0);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_EQ(count_lines(r.out), 1) << r.out;
  EXPECT_NE(r.out.find("run folder " + dir.string() + " is in use"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("pid " + std::to_string(first)), std::string::npos) << r.out;
  fs::remove_all(dir);
}

TEST(TrainCliRunFolder, ResumeFromACorruptCheckpointIsOneLineNamingFileAndTensor) {
  fs::path dir = fresh_dir("corrupt");
  ASSERT_EQ(sh(train_cmd(dir, "--set train.steps=4 --set checkpoint.every=2")).status, 0);
  const fs::path w = dir / "checkpoints" / "step-00000004" / "weights.safetensors";
  {
    std::fstream f(w, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-2, std::ios::end);
    char c = 0;
    f.get(c);
    f.seekp(-2, std::ios::end);
    f.put(static_cast<char>(c ^ 0x01));
  }
  Result r = sh(train_cmd(dir, "--set train.steps=6 --resume " + (dir / "checkpoints" / "step-00000004").string()));
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_EQ(count_lines(r.out), 1) << r.out;
  EXPECT_NE(r.out.find(w.string()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fails its checksum"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tensor '"), std::string::npos) << r.out;
  // --resume auto takes step-2 instead, with a warning naming both.
  FILE* p = popen(("OMP_NUM_THREADS=1 " + train_cmd(dir, "--set train.steps=6 --resume auto") + " 2>&1").c_str(), "r");
  std::string out;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), p)) out += buf.data();
  EXPECT_EQ(pclose(p), 0) << out;
  EXPECT_NE(out.find("warning: refusing checkpoint " + (dir / "checkpoints" / "step-00000004").string()),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("resuming from " + (dir / "checkpoints" / "step-00000002").string()), std::string::npos) << out;
  fs::remove_all(dir);
}
