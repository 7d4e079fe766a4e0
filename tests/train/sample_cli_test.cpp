// The `sample` program as a user meets it: a tiny model trained for a few steps by `train`, then
// sampled — bytes on stdout, repeatable, and one-line errors with a non-zero status for a bad
// run folder, a missing or corrupt checkpoint, bad flags and a request past the sequence length.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/paths.h"

namespace fs = std::filesystem;

namespace {

struct Result {
  int status;
  std::string out, err;
};

Result sh(const std::string& cmd) {
  const fs::path err = fs::temp_directory_path() / ("sparrow_sample_err_" + std::to_string(::getpid()));
  Result r{0, "", ""};
  FILE* p = popen(("OMP_NUM_THREADS=1 " + cmd + " 2>" + err.string()).c_str(), "r");
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::stringstream s;
  s << std::ifstream(err).rdbuf();
  r.err = s.str();
  fs::remove(err);
  return r;
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

std::string sample(const fs::path& run, const std::string& more) {
  return sparrow::testing::bin_dir() + "/sample --run " + run.string() + " " + more;
}

// One run folder for the suite: tiny.yaml (sequence length 64), block-sparse attention at 50%,
// 4 steps with checkpoints at steps 2 and 4.
class SampleCli : public ::testing::Test {
 protected:
  static fs::path run_;
  static void SetUpTestSuite() {
    run_ = fs::temp_directory_path() / ("sparrow_sample_cli_" + std::to_string(::getpid()));
    fs::remove_all(run_);
    std::string c = sparrow::testing::bin_dir() + "/train --config " + sparrow::testing::source_dir() +
                    "/configs/tiny.yaml --out " + run_.string() +
                    " --set train.device=cpu --set eval.every=0 --set schedule.warmup_steps=1 --set train.steps=4"
                    " --set checkpoint.every=2 --set attention.backend=block_sparse --set attention.sparsity=0.5";
    for (const std::string& o : sparrow::testing::data_overrides()) c += " --set " + o;
    const Result r = sh(c + " >/dev/null");
    ASSERT_EQ(r.status, 0) << r.err;
  }
  static void TearDownTestSuite() { fs::remove_all(run_); }
  static fs::path copy_of_run(const std::string& name) {
    const fs::path p = run_.string() + "_" + name;
    fs::remove_all(p);
    fs::copy(run_, p, fs::copy_options::recursive);
    return p;
  }
};
fs::path SampleCli::run_;

void expect_one_line_error(const Result& r, int status, const std::string& names) {
  EXPECT_EQ(r.status, status) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.rfind("sample: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(names), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

}  // namespace

TEST_F(SampleCli, GreedyWritesTheNewBytesAndRepeats) {
  const Result a = sh(sample(run_, "--prompt 'The ' --tokens 20 --temperature 0"));
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.out.size(), 20u);
  EXPECT_TRUE(a.err.empty()) << a.err;
  EXPECT_EQ(sh(sample(run_, "--prompt 'The ' --tokens 20 --temperature 0")).out, a.out);
}

TEST_F(SampleCli, ASeedRepeatsTheSampledText) {
  const std::string cmd = sample(run_, "--prompt 'A' --tokens 30 --temperature 1 --top-k 20 --seed 3");
  const Result a = sh(cmd), b = sh(cmd);
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.out.size(), 30u);
  EXPECT_EQ(a.out, b.out);
}

TEST_F(SampleCli, EchoWritesThePromptFirst) {
  const Result r = sh(sample(run_, "--prompt 'word: ' --tokens 5 --temperature 0 --echo"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.size(), 11u);
  EXPECT_EQ(r.out.rfind("word: ", 0), 0u) << r.out;
}

TEST_F(SampleCli, AnOlderCheckpointOnRequest) {
  const Result r =
      sh(sample(run_, "--prompt 'x' --tokens 8 --checkpoint " + (run_ / "checkpoints" / "step-00000002").string()));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.size(), 8u);
}

TEST_F(SampleCli, AFullContextIsAllowedAndOneMoreByteIsRefused) {
  // Sequence length 64: a 60-byte prompt leaves room for 5 new bytes.
  const std::string prompt(60, 'a');
  EXPECT_EQ(sh(sample(run_, "--prompt " + prompt + " --tokens 5 --temperature 0")).out.size(), 5u);
  expect_one_line_error(sh(sample(run_, "--prompt " + prompt + " --tokens 6")), 1, "at most 5 new tokens");
  expect_one_line_error(sh(sample(run_, "--prompt " + std::string(65, 'a') + " --tokens 1")), 1,
                        "longer than the model's sequence length 64");
}

TEST_F(SampleCli, BadRunFoldersAreOneLine) {
  expect_one_line_error(sh(sample("/nonexistent/run", "--prompt x --tokens 1")), 1, "/nonexistent/run");
  const fs::path empty = fs::temp_directory_path() / ("sparrow_sample_empty_" + std::to_string(::getpid()));
  fs::create_directories(empty);
  expect_one_line_error(sh(sample(empty, "--prompt x --tokens 1")), 1, "no config.yaml");
  fs::remove_all(empty);
  const fs::path none = copy_of_run("nockpt");
  fs::remove_all(none / "checkpoints");
  expect_one_line_error(sh(sample(none, "--prompt x --tokens 1")), 1, "no complete checkpoint");
  expect_one_line_error(sh(sample(run_, "--prompt x --tokens 1 --checkpoint /nonexistent/ckpt")), 1,
                        "/nonexistent/ckpt");
  fs::remove_all(none);
}

TEST_F(SampleCli, ACorruptNewestCheckpointIsRefusedNotReplaced) {
  const fs::path bad = copy_of_run("corrupt");
  const fs::path weights = bad / "checkpoints" / "step-00000004" / "weights.safetensors";
  {
    std::fstream f(weights, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-8, std::ios::end);
    char c;
    f.get(c);
    f.seekp(-8, std::ios::end);
    f.put(static_cast<char>(c ^ 0x5a));
  }
  expect_one_line_error(sh(sample(bad, "--prompt x --tokens 1")), 1, "weights.safetensors");
  fs::remove_all(bad);
}

TEST_F(SampleCli, BadFlagsAreOneLineWithExit2) {
  expect_one_line_error(sh(sample(run_, "--prompt x --tokens 1 --temperature -1")), 2, "temperature");
  expect_one_line_error(sh(sample(run_, "--prompt x --tokens 1 --top-k -2")), 2, "top-k");
  expect_one_line_error(sh(sample(run_, "--prompt x --tokens 0")), 2, "--tokens");
  expect_one_line_error(sh(sample(run_, "--prompt x")), 2, "--tokens");
  expect_one_line_error(sh(sample(run_, "--prompt x --tokens abc")), 2, "--tokens");
  expect_one_line_error(sh(sample(run_, "--prompt '' --tokens 3")), 1, "prompt is empty");
}
