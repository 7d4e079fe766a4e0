// End-to-end training on the CPU: tiny.yaml learns, resume reproduces the loss curve bit for bit,
// every backend trains, non-finite steps are skipped then stop the run with the last checkpoint
// intact.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "attention/layout/block_layout.h"
#include "common/paths.h"
#include "train/checkpoint.h"
#include "train/config/config.h"
#include "train/parallel.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace sparrow;
using namespace sparrow::train;

namespace {

using sparrow::testing::source_dir;

fs::path fresh_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("sparrow_trainer_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p;
}

Config tiny(std::vector<std::string> overrides) {
  for (const std::string& o : sparrow::testing::data_overrides()) overrides.push_back(o);
  return load_config(source_dir() + "/configs/tiny.yaml", overrides);
}

std::vector<nlohmann::json> read_metrics(const fs::path& run) {
  std::vector<nlohmann::json> out;
  std::ifstream f(run / "metrics.jsonl");
  std::string line;
  while (std::getline(f, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

RunResult run(const Config& c, const fs::path& dir, const std::string& resume = "", int64_t stop_after = 0) {
  RunOptions o;
  o.out_dir = dir.string();
  o.resume = resume;
  o.stop_after = stop_after;
  return run_training(c, o);
}

}  // namespace

// Each rank of a multi-GPU launch trains on the GPU of its local rank (the one its NCCL
// communicator opens), never all on cuda:0; too few GPUs for the ranks is a clear error.
TEST(Trainer, EachRankTrainsOnTheGpuOfItsLocalRank) {
  EXPECT_EQ(rank_gpu_index(1, 0, 1), 0);
  EXPECT_EQ(rank_gpu_index(1, 0, 8), 0);
  EXPECT_EQ(rank_gpu_index(4, 0, 4), 0);
  EXPECT_EQ(rank_gpu_index(4, 3, 4), 3);
  EXPECT_EQ(rank_gpu_index(16, 5, 8), 5);  // two hosts of 8: local rank 5 of the second
  try {
    rank_gpu_index(4, 2, 2);
    FAIL() << "no error for 4 ranks on a 2-GPU host";
  } catch (const TrainError& e) {
    EXPECT_NE(std::string(e.what()).find("local rank 2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("2 GPU(s)"), std::string::npos) << e.what();
  }
}

TEST(Trainer, TinyConfigLossFalls) {
  fs::path dir = fresh_dir("falls");
  Config c = tiny({"train.steps=40", "eval.every=20"});
  RunResult r = run(c, dir);
  auto m = read_metrics(dir);
  ASSERT_EQ(m.size(), 40u);
  const double first = m.front()["loss"].get<double>();
  double last5 = 0;
  for (size_t i = m.size() - 5; i < m.size(); ++i) last5 += m[i]["loss"].get<double>() / 5;
  // Uniform over 256 bytes is ln 256 = 5.55 nats; English bytes drop fast below 3.2 nats.
  EXPECT_NEAR(first, std::log(256.0), 0.3);
  EXPECT_LT(last5, 3.2) << "first " << first;
  EXPECT_EQ(r.steps_done, 40);
  EXPECT_GT(r.final_val_bpb, 0);
  EXPECT_LT(r.final_val_bpb, 3.2 / std::log(2.0));
  // The run folder holds the resolved config and a loadable checkpoint.
  EXPECT_TRUE(fs::exists(dir / "config.yaml"));
  EXPECT_NO_THROW(load_config((dir / "config.yaml").string()));
  ASSERT_TRUE(latest_checkpoint(dir.string()).has_value());
  EXPECT_TRUE(fs::exists(fs::path(*latest_checkpoint(dir.string())) / "weights.safetensors"));
  // Every record carries the keys the plots and users read.
  for (const char* k : {"step", "loss", "lr", "grad_norm", "tokens_per_s", "ms", "density", "memory_bytes"})
    EXPECT_TRUE(m.back().contains(k)) << k;
  fs::remove_all(dir);
}

TEST(Trainer, ResumeReproducesTheLossCurveBitForBit) {
  fs::path a = fresh_dir("straight"), b = fresh_dir("resumed");
  // Dropout on, so the RNG state must round-trip too. On the CPU: bit-for-bit is a CPU promise
  // (on a GPU, cuBLASLt may pick another algorithm for the differently aligned buffers of the
  // resumed process, which changes the rounding).
  // Dense, and block_sparse under a sparsity schedule that moves across the stop: the resumed
  // model's layers take their targets from the step alone, as the uninterrupted ones did.
  for (const std::vector<std::string>& attention :
       {std::vector<std::string>{},
        std::vector<std::string>{"attention.backend=block_sparse", "train.seq_len=128", "attention.schedule.from=0.2",
                                 "attention.schedule.to=0.8", "attention.schedule.start=4", "attention.schedule.end=14",
                                 "attention.schedule.shape=cosine"}}) {
    SCOPED_TRACE(attention.empty() ? "dense" : "block_sparse under a schedule");
    std::vector<std::string> o{"train.steps=16", "checkpoint.every=8", "model.dropout=0.1", "eval.every=0",
                               "train.device=cpu"};
    o.insert(o.end(), attention.begin(), attention.end());
    run(tiny(o), a);
    // The interrupted run: the same configuration stopped after step 11 (between checkpoints, as a
    // signal would), then a fresh model and optimizer that resume from the folder.
    RunResult part = run(tiny(o), b, "", 11);
    EXPECT_TRUE(part.stopped_early);
    EXPECT_EQ(part.steps_done, 11);
    run(tiny(o), b, "auto");
    auto ma = read_metrics(a), mb = read_metrics(b);
    ASSERT_EQ(ma.size(), 16u);
    ASSERT_EQ(mb.size(), 16u);
    for (size_t i = 0; i < ma.size(); ++i) {
      EXPECT_EQ(ma[i]["step"], mb[i]["step"]);
      EXPECT_EQ(ma[i]["loss"].get<double>(), mb[i]["loss"].get<double>()) << "step " << i + 1;
      EXPECT_EQ(ma[i]["grad_norm"].get<double>(), mb[i]["grad_norm"].get<double>()) << "step " << i + 1;
      EXPECT_EQ(ma[i]["density"], mb[i]["density"]) << "step " << i + 1;
    }
    fs::remove_all(a);
    fs::remove_all(b);
  }
}

TEST(Trainer, EveryBackendTrainsAFewSteps) {
  for (const char* backend : {"dense", "block_sparse", "hierarchical", "adaptive", "auto"}) {
    fs::path dir = fresh_dir(std::string("backend_") + backend);
    Config c = tiny({"train.steps=3", "eval.every=0", "checkpoint.every=0", std::string("attention.backend=") + backend,
                     "schedule.warmup_steps=1",
                     // auto takes its sparsity from the length and refuses one of its own
                     std::string("attention.sparsity=") + (std::string(backend) == "auto" ? "0" : "0.5"),
                     "attention.auto.dense_max_seq=32", "attention.auto.budget_tokens=32"});
    ASSERT_NO_THROW(run(c, dir)) << backend;
    auto m = read_metrics(dir);
    ASSERT_EQ(m.size(), 3u) << backend;
    for (auto& r : m) EXPECT_TRUE(std::isfinite(r["loss"].get<double>())) << backend;
    fs::remove_all(dir);
  }
}

TEST(Trainer, SparsityScheduleIsAppliedAndLogged) {
  fs::path dir = fresh_dir("schedule");
  Config c =
      tiny({"train.steps=6", "eval.every=0", "checkpoint.every=0", "train.seq_len=128", "attention.block_size=16",
            "attention.backend=block_sparse", "attention.schedule.from=0.2", "attention.schedule.to=0.7",
            "attention.schedule.start=0", "attention.schedule.end=5", "attention.schedule.shape=linear"});
  run(c, dir);
  auto m = read_metrics(dir);
  ASSERT_EQ(m.size(), 6u);
  EXPECT_NEAR(m[0]["target_sparsity"][0].get<double>(), 0.2, 1e-12);
  EXPECT_NEAR(m[5]["target_sparsity"][0].get<double>(), 0.7, 1e-12);
  // The realised density follows the target down.
  EXPECT_GT(m[0]["density"][0].get<double>(), m[5]["density"][0].get<double>() + 0.2);
  // What every layer's forward ran at step i (record i) is the schedule's value at i: the logged
  // target is the model's (sparsity_targets_at), the density is the backend's own layout's.
  const attn::SparsitySchedule& schedule = c.attention.base.attn.schedule;
  for (size_t i = 0; i < m.size(); ++i)
    for (size_t l = 0; l < 2; ++l) {
      SCOPED_TRACE("step " + std::to_string(i) + ", layer " + std::to_string(l));
      const double want = schedule.at(static_cast<int64_t>(i));
      EXPECT_EQ(m[i]["target_sparsity"][l].get<double>(), want);
      attn::AttentionConfig at = c.attention.layer(static_cast<int64_t>(l)).attn;
      at.schedule = {};
      at.sparsity = want;
      EXPECT_NEAR(m[i]["density"][l].get<double>(), attn::get_layout(at, 128, c.model.n_heads, true)->density(), 1e-12);
    }
  fs::remove_all(dir);
}

TEST(Trainer, NonFiniteStepsAreSkippedThenStopTheRunWithTheLastCheckpointIntact) {
  fs::path dir = fresh_dir("nan");
  // An absurd learning rate: the first update is finite, then the weights overflow. Set past
  // the config's validation (which refuses lr > 10): what is tested is the trainer's own guard.
  Config c =
      tiny({"train.steps=30", "checkpoint.every=1", "eval.every=0", "schedule.warmup_steps=0", "optim.grad_clip=0"});
  c.optim.lr = 1e30;
  c.optim.min_lr = 1e29;
  try {
    run(c, dir);
    FAIL() << "expected the run to stop";
  } catch (const TrainError& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite steps in a row"), std::string::npos) << e.what();
  }
  // Skipped steps write nothing: the newest checkpoint is the last step that updated.
  auto last = latest_checkpoint(dir.string());
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(fs::path(*last).filename().string(), "step-00000001");
  // It is whole: a fresh model and optimizer load it (every name, shape and dtype checked).
  Config again = tiny({"train.steps=1", "checkpoint.every=0", "eval.every=0", "schedule.warmup_steps=0"});
  RunResult r;
  EXPECT_NO_THROW(r = run(again, dir, *last));
  EXPECT_EQ(r.steps_done, 1);
  fs::remove_all(dir);
}

// train.cuda_graph: on asks for a captured GPU step; on the CPU that cannot be, and the run says so
// before training (auto, the default, runs eagerly there).
TEST(Trainer, CudaGraphOnOnTheCpuIsRefusedNamingTheKey) {
  fs::path dir = fresh_dir("graph_on_cpu");
  Config c = tiny({"train.steps=2", "train.device=cpu", "train.cuda_graph=on", "eval.every=0", "checkpoint.every=0",
                   "schedule.warmup_steps=0"});
  try {
    run(c, dir);
    FAIL() << "accepted";
  } catch (const TrainError& e) {
    EXPECT_NE(std::string(e.what()).find("train.cuda_graph is 'on' but the run is on the CPU"), std::string::npos)
        << e.what();
  }
  fs::remove_all(dir);
}
