// A run read back for sampling: the checkpoint's weights, and every attention layer at the
// sparsity its schedule gave the last step those weights took (so decode reads the layouts the
// weights were trained with).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "common/paths.h"
#include "framework/autograd/node.h"
#include "train/sample/trained_model.h"

namespace fs = std::filesystem;
using namespace sparrow;

namespace {

// tiny.yaml with block-sparse attention whose sparsity goes linearly from 0.1 to 0.8 over steps
// 0..4; checkpoints at steps 2 and 4.
fs::path train_scheduled_run() {
  const fs::path run = fs::temp_directory_path() / ("sparrow_trained_model_" + std::to_string(::getpid()));
  fs::remove_all(run);
  std::string c = "OMP_NUM_THREADS=1 " + sparrow::testing::bin_dir() + "/train --config " +
                  sparrow::testing::source_dir() + "/configs/tiny.yaml --out " + run.string() +
                  " --set train.device=cpu --set eval.every=0 --set schedule.warmup_steps=1 --set train.steps=4"
                  " --set checkpoint.every=2 --set attention.backend=block_sparse --set attention.schedule.from=0.1"
                  " --set attention.schedule.to=0.8 --set attention.schedule.start=0 --set attention.schedule.end=4";
  for (const std::string& o : sparrow::testing::data_overrides()) c += " --set " + o;
  const int st = std::system((c + " >/dev/null 2>&1").c_str());
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << c;
  return run;
}

double target_sparsity_of_a_forward(train::TrainedModel& t) {
  NoGradGuard ng;
  const int64_t T = t.config.train.seq_len;
  t.model->forward(from_ints(std::vector<int32_t>(size_t(T), 65), {1, T}), t.attention_step());
  return t.model->attention_stats()[0].target_sparsity;
}

}  // namespace

TEST(TrainedModel, LayersTakeTheScheduleAtTheLastStepTaken) {
  const fs::path run = train_scheduled_run();
  train::TrainedModel newest = train::load_trained_model(run.string());
  EXPECT_EQ(newest.step, 4);
  EXPECT_EQ(fs::path(newest.checkpoint).filename(), "step-00000004");
  EXPECT_FALSE(newest.model->is_training());
  // The sparsity of the last step the weights took: step 3 of 0.1 → 0.8 over steps 0..4.
  EXPECT_EQ(newest.attention_step(), 3);
  EXPECT_DOUBLE_EQ(target_sparsity_of_a_forward(newest), newest.config.attention.layer(0).attn.schedule.at(3));
  EXPECT_NEAR(target_sparsity_of_a_forward(newest), 0.625, 1e-12);

  train::TrainedModel older = train::load_trained_model(run.string(), (run / "checkpoints" / "step-00000002").string());
  EXPECT_EQ(older.step, 2);
  EXPECT_NEAR(target_sparsity_of_a_forward(older), 0.275, 1e-12);

  // Resumed at another sequence length, config.yaml says 32: the older checkpoints, trained at
  // 64, would be decoded with layouts of the wrong length and are refused.
  std::string c = "OMP_NUM_THREADS=1 " + sparrow::testing::bin_dir() + "/train --config " +
                  (run / "config.yaml").string() + " --out " + run.string() +
                  " --resume auto --set train.steps=6 --set train.seq_len=32";
  for (const std::string& o : sparrow::testing::data_overrides()) c += " --set " + o;
  const int st = std::system((c + " >/dev/null 2>&1").c_str());
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << c;
  EXPECT_EQ(train::load_trained_model(run.string()).step, 6);
  try {
    train::load_trained_model(run.string(), (run / "checkpoints" / "step-00000004").string());
    ADD_FAILURE() << "a checkpoint of another sequence length loaded";
  } catch (const train::SampleError& e) {
    EXPECT_NE(std::string(e.what()).find("train.seq_len 64"), std::string::npos) << e.what();
  }
  fs::remove_all(run);
}

TEST(TrainedModel, RefusesWhatIsNotARunFolder) {
  EXPECT_THROW(train::load_trained_model("/nonexistent/run"), train::SampleError);
  const fs::path empty = fs::temp_directory_path() / ("sparrow_trained_model_empty_" + std::to_string(::getpid()));
  fs::create_directories(empty);
  EXPECT_THROW(train::load_trained_model(empty.string()), train::SampleError);
  fs::remove_all(empty);
}
