// The step-memory estimate (train/memory.h): against the peaks bench/gpt12.yaml reached on an H100
// (bench/RESULTS.md, "GPU, session 17": the allocator's peak_allocated), and the refusal it drives.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/paths.h"
#include "train/config/config.h"
#include "train/memory.h"
#include "train/trainer.h"

using namespace sparrow;
using namespace sparrow::train;

namespace {

constexpr double kGiB = double(1 << 30);

Config gpt12(std::vector<std::string> overrides) {
  for (const std::string& o : sparrow::testing::data_overrides()) overrides.push_back(o);
  return load_config(sparrow::testing::source_dir() + "/bench/gpt12.yaml", overrides);
}

}  // namespace

// Close to the peaks: check_memory_fits refuses what the estimate puts above the memory available,
// with no margin, so an estimate far above a peak refuses runs that fit (2M tokens here, 78.3 of
// the card's 79.6 GiB), and one far below admits runs that stop at their first step.
TEST(MemoryEstimate, CoversTheMeasuredH100PeaksOfGpt12) {
  // 64K tokens, 95 % bigbird, activations kept: 20.3 GiB.
  const Config kept =
      gpt12({"train.seq_len=65536", "train.batch_size=1", "attention.backend=block_sparse", "attention.sparsity=0.95"});
  const double kept_gib = estimate_step_bytes(kept, Device::cuda()) / kGiB;
  EXPECT_NEAR(kept_gib, 20.3, 20.3 * 0.05);
  // 2M tokens, 99 % bigbird, recompute in chunks of 64K tokens: 78.3 GiB (the backward's
  // gradients in flight and attention's dQ sums are a quarter of it).
  const Config recomputed = gpt12({"train.seq_len=2097152", "train.batch_size=1", "attention.backend=block_sparse",
                                   "attention.sparsity=0.99", "train.recompute=true", "train.recompute_chunk=65536"});
  const double recomputed_gib = estimate_step_bytes(recomputed, Device::cuda()) / kGiB;
  EXPECT_NEAR(recomputed_gib, 78.3, 78.3 * 0.05);
}

TEST(MemoryEstimate, RecomputeAndChunksLowerIt) {
  const std::vector<std::string> base{"train.seq_len=262144", "train.batch_size=1", "attention.backend=block_sparse",
                                      "attention.sparsity=0.99"};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.begin(), base.begin(), base.end());
    return estimate_step_bytes(gpt12(more), Device::cuda());
  };
  const double kept = with({}), recomputed = with({"train.recompute=true"}),
               chunked = with({"train.recompute=true", "train.recompute_chunk=65536"});
  EXPECT_LT(recomputed, kept);
  EXPECT_LT(chunked, recomputed);
}

TEST(MemoryEstimate, RefusesWhatTheDeviceCannotHoldNamingTheKeys) {
  // A billion tokens of gpt12 on the CPU: terabytes, more than any test machine has.
  const Config huge = gpt12({"train.device=cpu", "train.dtype=f32", "train.seq_len=1048576", "train.batch_size=1024",
                             "attention.backend=block_sparse", "attention.sparsity=0.99"});
  try {
    check_memory_fits(huge, Device::cpu());
    FAIL() << "a step of " << estimate_step_bytes(huge, Device::cpu()) / kGiB << " GiB was admitted";
  } catch (const TrainError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("train.seq_len=1048576"), std::string::npos) << m;
    EXPECT_NE(m.find("train.batch_size=1024"), std::string::npos) << m;
    EXPECT_NE(m.find("train.recompute: true"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << "one line: " << m;
  }
}
