// Training on the GPU against the CPU: 50 steps of tiny.yaml in f32 give the same loss curve on
// both devices (within the rounding of different summation orders), bf16 training converges like
// f32, and a steady training step makes no cudaMalloc calls.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/gradcheck.h"
#include "common/paths.h"
#include "framework/core/storage.h"
#include "framework/nn/parameter_buffer.h"
#include "framework/optim/adamw.h"
#include "models/transformer.h"
#include "train/config/config.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace sparrow;

namespace {

std::vector<double> losses(const std::string& device, const std::string& dtype, int steps) {
  std::vector<std::string> o{"train.device=" + device, "train.dtype=" + dtype, "train.steps=" + std::to_string(steps),
                             "eval.every=0", "checkpoint.every=0"};
  for (const std::string& d : sparrow::testing::data_overrides()) o.push_back(d);
  train::Config c = train::load_config(sparrow::testing::source_dir() + "/configs/tiny.yaml", o);
  // Per process: ctest -j runs this binary's tests in parallel.
  fs::path dir = fs::temp_directory_path() / ("sparrow_gpu_train_" + device + dtype + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  train::RunOptions r;
  r.out_dir = dir.string();
  train::run_training(c, r);
  std::vector<double> out;
  std::ifstream f(dir / "metrics.jsonl");
  std::string line;
  while (std::getline(f, line)) out.push_back(nlohmann::json::parse(line)["loss"].get<double>());
  fs::remove_all(dir);
  return out;
}

}  // namespace

TEST(TrainGpu, F32LossCurveMatchesTheCpu) {
  SPARROW_REQUIRE_GPU();
  auto cpu = losses("cpu", "f32", 50), gpu = losses("cuda", "f32", 50);
  ASSERT_EQ(cpu.size(), 50u);
  ASSERT_EQ(gpu.size(), 50u);
  for (size_t i = 0; i < cpu.size(); ++i) EXPECT_NEAR(gpu[i], cpu[i], 2e-3 * std::abs(cpu[i])) << "step " << i + 1;
}

TEST(TrainGpu, Bf16ConvergesLikeF32) {
  SPARROW_REQUIRE_GPU();
  auto f32 = losses("cuda", "f32", 50), b16 = losses("cuda", "bf16", 50);
  ASSERT_EQ(b16.size(), 50u);
  double mf = 0, mb = 0;
  for (size_t i = 45; i < 50; ++i) {
    mf += f32[i] / 5;
    mb += b16[i] / 5;
  }
  EXPECT_LT(mb, b16.front() - 1.5) << "bf16 did not learn";
  EXPECT_NEAR(mb, mf, 0.05 * mf) << "bf16 final loss " << mb << " vs f32 " << mf;
}

// The caching allocator's promise (#5): after the first steps have filled the pools, a training
// step (forward, backward, optimizer) on the GPU calls cudaMalloc no more.
TEST(TrainGpu, NoCudaMallocInASteadyStep) {
  SPARROW_REQUIRE_GPU();
  const Device dev = Device::cuda(0);
  models::TransformerOptions o;
  o.n_layers = 2;
  o.d_model = 128;
  o.n_heads = 4;
  attn::AttentionConfig a;
  a.backend = "dense";
  o.attention.assign(2, a);
  Generator init(1), data(2);
  models::TransformerLM model(o, init, dev);
  nn::ParameterBuffer params = nn::ParameterBuffer::pack(model, DType::F32, dev);
  optim::AdamW opt(params, {});
  auto tokens = [&] {
    std::vector<int32_t> v(4 * 256);
    for (auto& x : v) x = static_cast<int32_t>(data.below(256));
    return from_ints(v, {4, 256}).to(dev);
  };
  auto step = [&](int64_t i) {
    opt.zero_grad();
    Tensor ids = tokens(), targets = tokens();
    model.loss(ids, targets, i, DType::BF16).backward();
    opt.step();
  };
  for (int64_t i = 0; i < 3; ++i) step(i);
  device_memory::synchronize(dev);
  const size_t before = device_memory::stats(dev).mallocs;
  for (int64_t i = 3; i < 8; ++i) step(i);
  device_memory::synchronize(dev);
  EXPECT_EQ(device_memory::stats(dev).mallocs, before);
}
