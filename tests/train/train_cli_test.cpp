// The `train` program as a user meets it: one-line errors with the right exit status, --help,
// and a clean stop on SIGINT that leaves a checkpoint to resume from.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/paths.h"

namespace fs = std::filesystem;

namespace {

std::string bin() { return sparrow::testing::bin_dir() + "/train"; }
std::string src() { return sparrow::testing::source_dir(); }
std::string cache_flag() {
  std::string flags;
  for (const std::string& o : sparrow::testing::data_overrides()) flags += " --set " + o;
  return flags;
}

struct Result {
  int status;
  std::string out;  // stdout and stderr
};

Result sh(const std::string& cmd) {
  Result r{0, ""};
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
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

}  // namespace

TEST(TrainCli, HelpListsEveryKeyWithDefaults) {
  Result r = sh(bin() + " --help");
  EXPECT_EQ(r.status, 0);
  for (const char* k : {"--config", "--set", "--out", "--resume", "seq_len", "sparsity", "warmup_steps", "keep_last"})
    EXPECT_NE(r.out.find(k), std::string::npos) << k;
}

TEST(TrainCli, UnknownKeyIsOneLineWithExit2) {
  Result r = sh(bin() + " --config " + src() + "/configs/tiny.yaml --set model.n_layer=3");
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(count_lines(r.out), 1) << r.out;
  EXPECT_NE(r.out.find("model.n_layer"), std::string::npos) << r.out;
}

TEST(TrainCli, MissingCorpusIsOneLineNamingThePath) {
  // The missing path goes last: it must win over SPARROW_TEST_CORPUS's data.path in cache_flag().
  Result r = sh(bin() + " --config " + src() + "/configs/tiny.yaml --out " +
                (fs::temp_directory_path() / "sparrow_cli_missing").string() + cache_flag() +
                " --set data.path=/nonexistent/corpus.txt");
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(count_lines(r.out), 1) << r.out;
  EXPECT_NE(r.out.find("/nonexistent/corpus.txt"), std::string::npos) << r.out;
}

TEST(TrainCli, SequenceTheMemoryCannotHoldIsOneLine) {
  Result r = sh(bin() + " --config " + src() +
                "/configs/tiny.yaml --set train.seq_len=2000000000 --set train.device=cpu --out " +
                (fs::temp_directory_path() / "sparrow_cli_mem").string() + cache_flag());
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(count_lines(r.out), 1) << r.out;
  EXPECT_NE(r.out.find("train.seq_len"), std::string::npos) << r.out;
}

TEST(TrainCli, SigintFinishesTheStepCheckpointsAndExitsZero) {
  fs::path dir = fs::temp_directory_path() / ("sparrow_cli_sigint_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::vector<std::string> data = sparrow::testing::data_overrides();
    std::string cfg = src() + "/configs/tiny.yaml";
    std::freopen("/dev/null", "w", stdout);
    std::vector<const char*> args{
        "train", "--config",           cfg.c_str(), "--out",       dir.c_str(), "--set", "train.steps=100000",
        "--set", "checkpoint.every=0", "--set",     "eval.every=0"};
    for (const std::string& o : data) {
      args.push_back("--set");
      args.push_back(o.c_str());
    }
    args.push_back(nullptr);
    execv(bin().c_str(), const_cast<char* const*>(args.data()));
    _exit(127);
  }
  // Wait until training is under way (metrics appear), then interrupt.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream f(dir / "metrics.jsonl");
    std::string line;
    if (std::getline(f, line) && !line.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid, SIGINT);
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
  bool found = false;
  for (auto& e : fs::directory_iterator(dir / "checkpoints"))
    if (fs::exists(e.path() / "state.json")) found = true;
  EXPECT_TRUE(found);
  fs::remove_all(dir);
}
