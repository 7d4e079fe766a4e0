// Crash safety of the real `train` program: killed with SIGKILL at seeded random moments (during
// start-up, resume, steps and checkpoint writes) and resumed with --resume auto each time, the
// run ends with the loss curve of an uninterrupted run bit for bit, each step logged exactly once
// in order, and every checkpoint left behind verifying.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common/paths.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;

namespace {

// A checkpoint every 2 steps, so a good share of the run is spent writing them and kills land
// inside the writes; dropout on, so the RNG state must survive too.
constexpr int64_t kSteps = 150;
constexpr int kKills = 24;
const std::vector<std::string> kSettings{"train.steps=150",   "checkpoint.every=2", "checkpoint.keep_last=2",
                                         "model.dropout=0.1", "eval.every=0",       "train.device=cpu",
                                         "log.every=1000"};

pid_t start_train(const fs::path& dir, bool resume, const fs::path& log) {
  std::vector<std::string> args{sparrow::testing::bin_dir() + "/train", "--config",
                                sparrow::testing::source_dir() + "/configs/tiny.yaml", "--out", dir.string()};
  if (resume) {
    args.push_back("--resume");
    args.push_back("auto");
  }
  std::vector<std::string> sets = kSettings;
  for (const std::string& o : sparrow::testing::data_overrides()) sets.push_back(o);
  for (const std::string& s : sets) {
    args.push_back("--set");
    args.push_back(s);
  }
  pid_t pid = fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::setenv("OMP_NUM_THREADS", "1", 1);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

std::vector<nlohmann::json> read_metrics(const fs::path& run) {
  std::vector<nlohmann::json> out;
  std::ifstream f(run / "metrics.jsonl");
  std::string line;
  while (std::getline(f, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

// The last step in the log (a torn last line ignored).
int64_t last_step(const fs::path& run) {
  std::ifstream f(run / "metrics.jsonl");
  std::string line, last;
  while (std::getline(f, line))
    if (!f.eof()) last = line;
  if (last.empty()) return 0;
  auto j = nlohmann::json::parse(last, nullptr, false);
  return j.is_object() ? j.value("step", int64_t{0}) : 0;
}

// Traces of a write in progress: a checkpoint's .tmp folder or an atomic write's temp file.
bool write_in_progress(const fs::path& run) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(run, ec); it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.ends_with(".tmp") || name.ends_with(".del") || name.find(".tmp.") != std::string::npos) return true;
  }
  return false;
}

std::string tail_of(const fs::path& p) {
  std::ifstream f(p);
  std::string s((std::istreambuf_iterator<char>(f)), {});
  return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
}

}  // namespace

TEST(CrashSafety, KilledAtRandomMomentsAndResumedTheRunEqualsAnUninterruptedOne) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string tag = std::to_string(::getpid());
  const fs::path ref = fs::temp_directory_path() / ("sparrow_crash_ref_" + tag);
  const fs::path dir = fs::temp_directory_path() / ("sparrow_crash_run_" + tag);
  const fs::path log = fs::temp_directory_path() / ("sparrow_crash_" + tag + ".log");
  fs::remove_all(ref);
  fs::remove_all(dir);
  fs::remove(log);

  int st = 0;
  waitpid(start_train(ref, false, log), &st, 0);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << tail_of(log);

  std::mt19937 rng(15);
  std::uniform_int_distribution<int> delay_ms(0, 700);
  int kills = 0, during_writes = 0, runs = 0;
  bool finished = false;
  while (!finished) {
    ASSERT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(240)) << "the test is taking too long";
    const pid_t pid = start_train(dir, runs++ > 0, log);
    ASSERT_GT(pid, 0);
    if (kills < kKills) {
      // A seeded random delay, cut short once the run passes its share of the steps for this kill:
      // the kills spread over the whole run however fast the machine is, and the run cannot end
      // before the last one.
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms(rng));
      const int64_t share = (kills + 1) * kSteps / (kKills + 2);
      while (std::chrono::steady_clock::now() < until && last_step(dir) < share)
        std::this_thread::sleep_for(std::chrono::milliseconds(3));
      ::kill(pid, SIGKILL);
    }
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
      ++kills;
      during_writes += write_in_progress(dir);
    } else {
      ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "run " << runs << ":\n" << tail_of(log);
      finished = true;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "crash test: " << kills << " kills (" << during_writes << " during a write) in " << runs << " runs, "
            << seconds << " s\n";
  EXPECT_GE(kills, 20) << "the run finished before enough kills: lengthen it";

  // The log: each step once, in order, with the uninterrupted run's loss bit for bit.
  const auto a = read_metrics(ref), b = read_metrics(dir);
  ASSERT_EQ(a.size(), size_t(kSteps));
  ASSERT_EQ(b.size(), size_t(kSteps));
  for (size_t i = 0; i < b.size(); ++i) {
    ASSERT_EQ(b[i]["step"].get<int64_t>(), int64_t(i) + 1);
    EXPECT_EQ(a[i]["loss"].get<double>(), b[i]["loss"].get<double>()) << "step " << i + 1;
    EXPECT_EQ(a[i]["grad_norm"].get<double>(), b[i]["grad_norm"].get<double>()) << "step " << i + 1;
  }
  // Every checkpoint left anywhere in the run folder verifies, and no write's leftovers remain.
  int checked = 0;
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().starts_with("step-")) {
      EXPECT_NO_THROW(sparrow::train::verify_checkpoint(e.path().string())) << e.path();
      ++checked;
    }
  EXPECT_GE(checked, 2);
  EXPECT_FALSE(write_in_progress(dir));
  fs::remove_all(ref);
  fs::remove_all(dir);
  fs::remove(log);
}
