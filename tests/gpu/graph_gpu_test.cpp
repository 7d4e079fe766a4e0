// CUDA-graph capture (framework/cuda/graph.h) and the trainer's captured step (train/step.h):
// replays compute what eager work computes, the graph's blocks stay its own, deferred token checks
// raise after the replay that saw the bad id, a capture that synchronises fails with a clear
// error and leaves the stream usable, and training with the graph gives eager training's curve.
#include <gtest/gtest.h>

#include <cstdlib>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/gradcheck.h"
#include "common/paths.h"
#include "framework/ops/ops.h"
#include "train/checkpoint.h"
#include "train/config/config.h"
#include "train/trainer.h"
#ifdef SPARROW_WITH_CUDA
#include "framework/cuda/allocator.h"
#include "framework/cuda/graph.h"
#include "framework/cuda/runtime.h"
#endif

namespace fs = std::filesystem;
using namespace sparrow;

#ifdef SPARROW_WITH_CUDA

TEST(CudaGraph, ReplaysReadTheInputsOfEachLaunch) {
  SPARROW_REQUIRE_GPU();
  const Device dev = Device::cuda(0);
  Tensor x = zeros({1000}, DType::F32, dev), y = zeros({1000}, DType::F32, dev);
  void* temp_ptr = nullptr;
  cuda::Graph g;
  g.capture([&] {
    Tensor t = add_scalar(mul_scalar(x, 2.0), 1.0);  // temporaries from the graph's pool
    temp_ptr = t.data_ptr();
    copy_(y, t);
  });
  ASSERT_TRUE(g.captured());
  EXPECT_GE(g.nodes(), 3u);
  EXPECT_EQ(y.to_vector()[0], 0.0) << "capture must not run the work";
  const size_t mallocs = cuda::allocator_stats(0).cuda_mallocs;
  for (int i = 1; i <= 3; ++i) {
    fill_(x, double(i));
    g.replay();
    EXPECT_EQ(y.to_vector()[999], 2.0 * i + 1.0);
  }
  EXPECT_EQ(cuda::allocator_stats(0).cuda_mallocs, mallocs) << "a replay allocated";
  // The temporary's block belongs to the graph: eager work of the same size gets another one.
  Tensor eager = full({1000}, 7.0, DType::F32, dev);
  EXPECT_NE(eager.data_ptr(), temp_ptr);
  g.replay();
  EXPECT_EQ(eager.to_vector()[0], 7.0);
  EXPECT_EQ(y.to_vector()[0], 2.0 * 3 + 1.0);
}

TEST(CudaGraph, DeferredTokenChecksRaiseAfterTheReplay) {
  SPARROW_REQUIRE_GPU();
  const Device dev = Device::cuda(0);
  Generator gen(3);
  Tensor w = randn({16, 8}, gen, DType::F32, dev);
  Tensor ids = from_ints({1, 2, 3, 4}, {4}, dev), targets = from_ints({0, 1, 2, 3}, {4}, dev);
  Tensor out = zeros({}, DType::F32, dev);
  cuda::Graph g;
  g.capture([&] {
    Tensor logits = embedding(w, ids);
    Tensor l = cross_entropy(logits, targets, -100);
    copy_(out, l);
  });
  g.replay();
  cuda::synchronize();
  EXPECT_NO_THROW(g.raise_deferred_checks());
  EXPECT_GT(out.item(), 0.0);

  copy_(ids, from_ints({1, 2, 99, 4}, {4}));
  g.replay();
  cuda::synchronize();
  try {
    g.raise_deferred_checks();
    FAIL() << "a bad id passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("embedding: id 99 at position 2"), std::string::npos) << e.what();
  }
  copy_(ids, from_ints({1, 2, 3, 4}, {4}));
  copy_(targets, from_ints({0, 1, 8, -100}, {4}));
  g.replay();
  cuda::synchronize();
  try {
    g.raise_deferred_checks();
    FAIL() << "a bad target passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cross_entropy: target 8 is outside [0, 8)"), std::string::npos) << e.what();
  }
}

TEST(CudaGraph, ASynchronisingBodyFailsClearlyAndTheStreamStaysUsable) {
  SPARROW_REQUIRE_GPU();
  const Device dev = Device::cuda(0);
  Tensor x = full({10}, 2.0, DType::F32, dev);
  cuda::Graph g;
  try {
    g.capture([&] { (void)sum(x).item(); });
    FAIL() << "a capture that reads a value back succeeded";
  } catch (const cuda::CaptureError& e) {
    EXPECT_FALSE(std::string(e.what()).empty());
  }
  EXPECT_FALSE(g.captured());
  EXPECT_FALSE(cuda::capturing());
  EXPECT_EQ(sum(x).item(), 20.0);
}

#endif  // SPARROW_WITH_CUDA

namespace {

std::vector<nlohmann::json> train_rows(const std::string& config, const std::vector<std::string>& extra) {
  std::vector<std::string> o{"train.device=cuda", "eval.every=0", "checkpoint.every=0"};
  for (const std::string& d : sparrow::testing::data_overrides()) o.push_back(d);
  for (const std::string& e : extra) o.push_back(e);
  train::Config c = train::load_config(sparrow::testing::source_dir() + "/configs/" + config, o);
  // One folder per run: ctest -j runs this binary's tests in parallel processes.
  static int runs = 0;
  fs::path dir = fs::temp_directory_path() /
                 ("sparrow_gpu_graph_train_" + std::to_string(::getpid()) + "_" + std::to_string(runs++));
  fs::remove_all(dir);
  train::RunOptions r;
  r.out_dir = dir.string();
  train::run_training(c, r);
  std::vector<nlohmann::json> rows;
  std::ifstream f(dir / "metrics.jsonl");
  std::string line;
  while (std::getline(f, line)) rows.push_back(nlohmann::json::parse(line));
  fs::remove_all(dir);
  return rows;
}

}  // namespace

// tiny.yaml with the captured step against the eager step: the same curve (the embedding's
// backward adds with atomics, so the sums' order, and the last bits, may differ).
TEST(TrainGpu, CapturedStepTrainsLikeTheEagerStep) {
  SPARROW_REQUIRE_GPU();
  for (const std::string dtype : {"f32", "bf16"}) {
    auto eager = train_rows("tiny.yaml", {"train.dtype=" + dtype, "train.steps=30", "train.cuda_graph=off"});
    auto graph = train_rows("tiny.yaml", {"train.dtype=" + dtype, "train.steps=30", "train.cuda_graph=on"});
    ASSERT_EQ(eager.size(), 30u);
    ASSERT_EQ(graph.size(), 30u);
    for (size_t i = 0; i < eager.size(); ++i) {
      EXPECT_EQ(eager[i]["step_mode"], "eager");
      EXPECT_EQ(graph[i]["step_mode"], i < 2 ? "eager" : "cuda graph") << "step " << i + 1;
      const double a = eager[i]["loss"].get<double>(), b = graph[i]["loss"].get<double>();
      EXPECT_NEAR(b, a, 1e-4 * std::abs(a)) << dtype << " step " << i + 1;
      EXPECT_NEAR(graph[i]["grad_norm"].get<double>(), eager[i]["grad_norm"].get<double>(),
                  1e-3 * eager[i]["grad_norm"].get<double>())
          << dtype << " step " << i + 1;
    }
  }
}

// Gradient accumulation and a sparsity schedule under the graph: each schedule change drops the
// graph and the step runs eagerly until the sparsity holds still again; the curve matches eager.
TEST(TrainGpu, CapturedStepFollowsTheSparsityScheduleAndAccumulation) {
  SPARROW_REQUIRE_GPU();
  const std::vector<std::string> o{"train.steps=24",
                                   "train.seq_len=1024",
                                   "train.grad_accum=2",
                                   "attention.schedule.start=8",
                                   "attention.schedule.end=12",
                                   "schedule.warmup_steps=2",
                                   "train.dtype=bf16"};
  auto with = [&](const std::string& mode) {
    std::vector<std::string> x = o;
    x.push_back("train.cuda_graph=" + mode);
    return train_rows("schedule.yaml", x);
  };
  auto eager = with("off"), graph = with("auto");
  ASSERT_EQ(eager.size(), 24u);
  ASSERT_EQ(graph.size(), 24u);
  int replays = 0;
  for (size_t i = 0; i < eager.size(); ++i) {
    const double a = eager[i]["loss"].get<double>(), b = graph[i]["loss"].get<double>();
    EXPECT_NEAR(b, a, 1e-3 * std::abs(a)) << "step " << i + 1;
    if (graph[i]["step_mode"] != "cuda graph") continue;
    ++replays;
    // Replayed only after two eager steps at the same sparsity.
    ASSERT_GE(i, 2u);
    EXPECT_EQ(graph[i]["target_sparsity"], graph[i - 1]["target_sparsity"]) << "step " << i + 1;
    EXPECT_EQ(graph[i]["target_sparsity"], graph[i - 2]["target_sparsity"]) << "step " << i + 1;
  }
  EXPECT_GE(replays, 14) << "the graph was not used where the sparsity held still";
}

// Every attention backend's config, shrunk, with the graph against without: the same curve, and
// every one captured from the third step (adaptive attention picks its blocks on the device). With
// its selection on the host (SPARROW_ADAPTIVE_SELECT=host) adaptive cannot be captured, and
// train.cuda_graph: on stops naming the reason.
TEST(TrainGpu, EveryBackendUnderTheGraphTrainsLikeEager) {
  SPARROW_REQUIRE_GPU();
  const std::vector<std::string> small{"model.d_model=64",   "model.n_heads=4", "train.seq_len=1024",
                                       "train.batch_size=2", "train.steps=8",   "schedule.warmup_steps=1",
                                       "train.dtype=bf16"};
  for (const std::string name : {"dense", "block_sparse_90", "hierarchical", "auto", "adaptive"}) {
    auto with = [&](const std::string& mode) {
      std::vector<std::string> o = small;
      o.push_back("train.cuda_graph=" + mode);
      return train_rows(name + ".yaml", o);
    };
    auto eager = with("off"), graph = with("auto");
    ASSERT_EQ(eager.size(), 8u) << name;
    ASSERT_EQ(graph.size(), 8u) << name;
    for (size_t i = 0; i < eager.size(); ++i) {
      const double a = eager[i]["loss"].get<double>(), b = graph[i]["loss"].get<double>();
      EXPECT_NEAR(b, a, 2e-3 * std::abs(a)) << name << " step " << i + 1;
      EXPECT_EQ(graph[i]["step_mode"], i >= 2 ? "cuda graph" : "eager") << name << " step " << i + 1;
    }
  }
  setenv("SPARROW_ADAPTIVE_SELECT", "host", 1);
  try {
    train_rows("adaptive.yaml", {"model.d_model=64", "model.n_heads=4", "train.seq_len=1024", "train.batch_size=2",
                                 "train.steps=4", "schedule.warmup_steps=1", "train.cuda_graph=on"});
    ADD_FAILURE() << "adaptive attention with host selection was captured";
  } catch (const train::TrainError& e) {
    EXPECT_NE(std::string(e.what()).find("train.cuda_graph is 'on' but the step cannot be captured"), std::string::npos)
        << e.what();
  }
  unsetenv("SPARROW_ADAPTIVE_SELECT");
}

// The non-finite guard under the graph: once the weights overflow, replays skip the update on the
// device, the run stops after five in a row, and the last checkpoint is the last good step.
TEST(TrainGpu, NonFiniteStepsAreSkippedUnderTheGraph) {
  SPARROW_REQUIRE_GPU();
  std::vector<std::string> o{"train.device=cuda", "train.cuda_graph=on",     "train.steps=30",   "checkpoint.every=1",
                             "eval.every=0",      "schedule.warmup_steps=0", "optim.grad_clip=0"};
  for (const std::string& d : sparrow::testing::data_overrides()) o.push_back(d);
  train::Config c = train::load_config(sparrow::testing::source_dir() + "/configs/tiny.yaml", o);
  // Set past the config's validation (which refuses lr > 10): what is tested is the step's guard.
  c.optim.lr = 1e30;
  c.optim.min_lr = 1e29;
  fs::path dir = fs::temp_directory_path() / ("sparrow_gpu_graph_nan_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  train::RunOptions r;
  r.out_dir = dir.string();
  try {
    train::run_training(c, r);
    FAIL() << "expected the run to stop";
  } catch (const train::TrainError& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite steps in a row"), std::string::npos) << e.what();
  }
  auto last = train::latest_checkpoint(dir.string());
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(fs::path(*last).filename().string(), "step-00000001");
  fs::remove_all(dir);
}

// Dropout under the graph: each replay draws the masks the eager step would (its Philox counters
// shifted to the generator's position), so the curves agree; with recompute too (its replays of
// the forward rewind the generator inside the captured step), and with the token-wise parts
// recomputed in chunks (seq_len 64 in chunks of 24: two whole chunks and a ragged one), alone and
// inside whole-block recompute.
TEST(TrainGpu, CapturedStepDrawsTheEagerDropoutMasks) {
  SPARROW_REQUIRE_GPU();
  for (const auto& [recompute, chunk] : std::vector<std::pair<std::string, std::string>>{
           {"false", "0"}, {"true", "0"}, {"false", "24"}, {"true", "24"}}) {
    const std::vector<std::string> o{"train.steps=20", "model.dropout=0.2", "train.recompute=" + recompute,
                                     "train.recompute_chunk=" + chunk};
    auto with = [&](const std::string& mode) {
      std::vector<std::string> x = o;
      x.push_back("train.cuda_graph=" + mode);
      return train_rows("tiny.yaml", x);
    };
    auto eager = with("off"), graph = with("on");
    ASSERT_EQ(graph.size(), 20u);
    for (size_t i = 0; i < eager.size(); ++i) {
      EXPECT_EQ(graph[i]["step_mode"], i < 2 ? "eager" : "cuda graph");
      const double a = eager[i]["loss"].get<double>(), b = graph[i]["loss"].get<double>();
      EXPECT_NEAR(b, a, 1e-4 * std::abs(a)) << "recompute " << recompute << ", chunk " << chunk << " step " << i + 1;
    }
  }
}
