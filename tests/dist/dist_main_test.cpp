// The multi-process suite's main: every rank runs every test (collectives need all ranks); only
// rank 0 prints progress, any rank's failure is printed by that rank and fails the job.
#include <gtest/gtest.h>

#include "framework/dist/communicator.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (sparrow::dist::launched_rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    // Keep failures visible from every rank, but not the per-test progress lines.
    delete listeners.Release(listeners.default_result_printer());
    struct FailurePrinter : ::testing::EmptyTestEventListener {
      void OnTestPartResult(const ::testing::TestPartResult& r) override {
        if (r.failed())
          std::fprintf(stderr, "[rank %d] %s:%d: %s\n", sparrow::dist::launched_rank(),
                       r.file_name() ? r.file_name() : "?", r.line_number(), r.summary());
      }
    };
    listeners.Append(new FailurePrinter);
  }
  return RUN_ALL_TESTS();
}
