// The console step line (train/progress.h): what a piped run prints for one step.
#include "train/progress.h"

#include <gtest/gtest.h>

#include <string>

namespace sparrow::train {
namespace {

TEST(Progress, PlainLineShowsMemoryHeldAndPeak) {
  Progress progress(10, /*force_plain=*/true);
  ::testing::internal::CaptureStdout();
  progress.update(4, 2.5, 1234.4, 0.5, 1.5 * (1 << 30), 78.3 * (1 << 30), "lr 1.00e-04");
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(out, "step 4/10  loss 2.5000  1234 tok/s  ETA 0m03s  mem 1.5 GB (peak 78.3 GB)  lr 1.00e-04\n");
}

TEST(Progress, QuietPrintsNothing) {
  Progress progress(10, /*force_plain=*/true, /*quiet=*/true);
  ::testing::internal::CaptureStdout();
  progress.update(1, 1.0, 1.0, 1.0, 1.0, 1.0);
  progress.message("eval");
  progress.finish();
  EXPECT_EQ(::testing::internal::GetCapturedStdout(), "");
}

}  // namespace
}  // namespace sparrow::train
