// scripts/sweep: a study of two override sets trains both, evaluates both and writes the
// comparison (Markdown table, one PNG); run again, it skips both finished runs and trains
// nothing. A study file with an unknown key is refused with one line naming it.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/paths.h"
#include "common/source_corpus.h"

namespace fs = std::filesystem;

namespace {

struct Result {
  int status;
  std::string out;
};

Result sweep(const fs::path& study) {
  const std::string build = fs::path(sparrow::testing::bin_dir()).parent_path().string();
  const std::string cmd = "OMP_NUM_THREADS=1 SPARROW_BUILD_DIR=" + build + " python3 " +
                          sparrow::testing::source_dir() + "/scripts/sweep " + study.string() + " 2>&1";
  Result r{0, ""};
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), p)) r.out += buf.data();
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

fs::path temp(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("sparrow_sweep_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p;
}

}  // namespace

TEST(SweepCli, RunsEachOverrideSetThenSkipsFinishedRuns) {
  const fs::path dir = temp("study"), corpus = dir / "corpus", out = dir / "out";
  sparrow::testing::make_source_corpus(corpus);
  const fs::path study = dir / "study.yaml";
  std::ofstream(study) << "# two runs of the tiny config\n"
                          "base: "
                       << sparrow::testing::source_dir()
                       << "/configs/tiny.yaml\n"
                          "out: "
                       << out.string()
                       << "\n"
                          "set:\n"
                          "  - train.device=cpu\n"
                          "  - train.steps=4\n"
                          "  - eval.every=2\n"
                          "  - eval.batches=2\n"
                          "  - checkpoint.every=0\n"
                          "  - schedule.warmup_steps=1\n"
                          "  - data.path="
                       << corpus.string()
                       << "\n"
                          "  - data.val_fraction=0.2\n"
                          "  - data.cache_dir="
                       << (dir / "cache").string()
                       << "\n"
                          "eval_args: --first-bucket 16 --docs 4   # 0-16, 16-32, 32-64\n"
                          "profile_steps: 1\n"
                          "runs:\n"
                          "  dense: []\n"
                          "  bigbird:\n"
                          "    - attention.backend=block_sparse\n"
                          "    - attention.pattern.names=[bigbird]\n";
  Result first = sweep(study);
  ASSERT_EQ(first.status, 0) << first.out;
  for (const char* run : {"dense", "bigbird"}) {
    EXPECT_NE(first.out.find(std::string("[sweep] ") + run + ": training"), std::string::npos) << first.out;
    EXPECT_TRUE(fs::is_regular_file(out / run / "eval.json")) << run;
    EXPECT_TRUE(fs::is_regular_file(out / (std::string(run) + ".profile") / "profile.txt")) << run;
  }
  const std::string table = slurp(out / "study.md");
  for (const char* want : {"| dense |", "| bigbird |", "bpb 0–16", "bpb 32–64", "attention.backend=block_sparse"})
    EXPECT_NE(table.find(want), std::string::npos) << want << "\n" << table;
  // Each row: steps 4, a finite val bits/byte, an attention share in percent.
  std::istringstream rows(table);
  int with_numbers = 0;
  for (std::string line; std::getline(rows, line);)
    if (line.rfind("| dense |", 0) == 0 || line.rfind("| bigbird |", 0) == 0) {
      EXPECT_NE(line.find("| 4 |"), std::string::npos) << line;
      EXPECT_NE(line.find("%"), std::string::npos) << line;
      EXPECT_EQ(line.find("—"), std::string::npos) << "a missing value: " << line;
      ++with_numbers;
    }
  EXPECT_EQ(with_numbers, 2) << table;
  const std::string png = slurp(out / "curves.png");
  ASSERT_GE(png.size(), 8u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));

  const std::string metrics = slurp(out / "dense" / "metrics.jsonl");
  const auto stamp = fs::last_write_time(out / "bigbird" / "metrics.jsonl");
  Result second = sweep(study);
  ASSERT_EQ(second.status, 0) << second.out;
  EXPECT_NE(second.out.find("[sweep] dense: finished, skipped"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("[sweep] bigbird: finished, skipped"), std::string::npos) << second.out;
  EXPECT_EQ(second.out.find(": training"), std::string::npos) << second.out;
  EXPECT_EQ(second.out.find(": eval"), std::string::npos) << second.out;
  EXPECT_EQ(slurp(out / "dense" / "metrics.jsonl"), metrics);
  EXPECT_EQ(fs::last_write_time(out / "bigbird" / "metrics.jsonl"), stamp);
  fs::remove_all(dir);
}

TEST(SweepCli, AnUnknownKeyInTheStudyIsOneLineNamingTheFile) {
  const fs::path dir = temp("bad");
  fs::create_directories(dir);
  const fs::path study = dir / "study.yaml";
  std::ofstream(study) << "base: " << sparrow::testing::source_dir()
                       << "/configs/tiny.yaml\n"
                          "out: "
                       << (dir / "out").string() << "\nrunz:\n  dense: []\n";
  Result r = sweep(study);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find(study.string() + ": unknown key 'runz'"), std::string::npos) << r.out;
  int lines = 0;
  for (char c : r.out) lines += c == '\n';
  EXPECT_EQ(lines, 1) << r.out;
  fs::remove_all(dir);
}
