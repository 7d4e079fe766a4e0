// The attention_layout tool given hostile flags: a PNG it cannot write, a layout too large to
// build and parameters near 2^63 each end in one line and a non-zero status (or a correct
// layout), never in a silent success, unbounded growth or a wrapped layout.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

#include "common/paths.h"

namespace {

struct Result {
  int status;  // the exit status, or -1 when killed by a signal
  std::string out;
};

Result layout_tool(const std::string& flags) {
  Result r{0, ""};
  FILE* p = popen(("timeout 60 " + sparrow::testing::bin_dir() + "/attention_layout " + flags + " 2>&1").c_str(), "r");
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), p)) r.out += buf.data();
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(AttentionLayoutCli, PngThatCannotBeWrittenIsAnError) {
  Result full = layout_tool("--seq 1024 --png /dev/full");
  EXPECT_EQ(full.status, 1) << full.out;
  EXPECT_TRUE(has(full.out, "attention_layout: /dev/full: write failed (No space left on device)\n")) << full.out;
  EXPECT_FALSE(has(full.out, "png: /dev/full")) << full.out;
  Result missing = layout_tool("--seq 1024 --png /nonexistent_dir/x.png");
  EXPECT_EQ(missing.status, 1) << missing.out;
  EXPECT_TRUE(has(missing.out,
                  "attention_layout: /nonexistent_dir/x.png: cannot open for writing (No such file or directory)\n"))
      << missing.out;
}

TEST(AttentionLayoutCli, TooManyBlocksIsRefusedBeforeBuilding) {
  Result r = layout_tool("--seq 1000000000 --block 1");
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_EQ(r.out,
            "attention_layout: --seq 1000000000 at --block 1 gives 1000000000 blocks a side, over this tool's limit of "
            "4194304 (raise --block or lower --seq)\n");
}

TEST(AttentionLayoutCli, TooManyActiveBlocksIsRefusedBeforeBuilding) {
  Result r = layout_tool("--seq 4000000 --block 1 --pattern local --window 1000");
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_TRUE(has(r.out, "active blocks, over this tool's limit of 2.68435e+08")) << r.out;
  EXPECT_EQ(r.out.rfind("attention_layout: the layout would hold up to ", 0), 0u) << r.out;
}

TEST(AttentionLayoutCli, WindowNear2To63GivesTheDenseLayout) {
  Result r = layout_tool("--pattern local --window 9223372036854775807 --seq 1024 --block 64");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(has(r.out, "active blocks: 256 per head (mean)")) << r.out;
}

TEST(AttentionLayoutCli, BadNumbersAreOneLineWithExit2) {
  for (const char* flags : {"--seq 0", "--seq -5", "--block 0", "--heads 0", "--png-max 0 --png x.png", "--window -1",
                            "--sparsity 1", "--seq 99999999999999999999"}) {
    Result r = layout_tool(flags);
    EXPECT_EQ(r.status, 2) << flags << ": " << r.out;
    EXPECT_EQ(r.out.rfind("attention_layout: ", 0), 0u) << flags << ": " << r.out;
  }
}
