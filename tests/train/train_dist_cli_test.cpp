// The `train` program launched as several processes (`mpirun -np P train …`, as users run it):
// data-parallel, context-parallel and combined runs of tiny.yaml give the one-process loss
// curve (f32, to reduction order) and repeat bit for bit; rank 0 alone writes the run folder; a
// checkpoint written at one rank count resumes at another; a rank killed mid-run ends the job
// with an error in bounded time instead of a hang. Skipped (with the reason) in a build without
// MPI. On the CPU by default; SPARROW_DIST_TRAIN_DEVICE=cuda runs the same runs on one GPU per
// rank over NCCL (scripts/gpu-dist-check.sh, on a host with 4 GPUs).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/paths.h"

namespace fs = std::filesystem;

namespace {

#ifdef SPARROW_MPIEXEC
constexpr const char* kMpirun = SPARROW_MPIEXEC;
#else
constexpr const char* kMpirun = "";
#endif

#define SPARROW_REQUIRE_MPI()                                                               \
  do {                                                                                      \
    if (!*kMpirun) GTEST_SKIP() << "this build has no MPI (configure with SPARROW_MPI=ON)"; \
  } while (0)

fs::path fresh_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("sparrow_dist_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p;
}

// The device the runs train on: cpu, or cuda (one GPU per rank) where SPARROW_DIST_TRAIN_DEVICE says so.
std::string train_device() {
  const char* d = std::getenv("SPARROW_DIST_TRAIN_DEVICE");
  return d != nullptr && *d ? d : "cpu";
}

// How close a parallel run's loss curve is to the one-process run's: f32 sums in another order
// give a few ulps a step on the CPU, compounding over 12 AdamW steps; cuBLAS and the GPU
// reductions split their sums differently with the batch.
double curve_tolerance() { return train_device() == "cpu" ? 2e-5 : 1e-3; }

// `train` on tiny.yaml (12 steps) into `dir`, under mpirun -np `ranks` when ranks > 0.
std::string train_cmd(int ranks, const fs::path& dir, const std::string& more = "") {
  std::string c;
  if (ranks > 0) c = std::string(kMpirun) + " -np " + std::to_string(ranks) + " --oversubscribe --allow-run-as-root ";
  c += sparrow::testing::bin_dir() + "/train --config " + sparrow::testing::source_dir() + "/configs/tiny.yaml --out " +
       dir.string() + " --set train.device=" + train_device() +
       " --set train.steps=12 --set eval.every=6 --set checkpoint.every=6 --set log.every=100";
  for (const std::string& o : sparrow::testing::data_overrides()) c += " --set " + o;
  return c + " " + more;
}

int run(const std::string& cmd) {
  const int st = std::system(("OMP_NUM_THREADS=1 " + cmd + " > /dev/null 2>&1").c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::vector<nlohmann::json> metrics(const fs::path& dir) {
  std::vector<nlohmann::json> m;
  std::ifstream f(dir / "metrics.jsonl");
  std::string line;
  while (std::getline(f, line)) m.push_back(nlohmann::json::parse(line));
  return m;
}

void expect_same_curve(const std::vector<nlohmann::json>& a, const std::vector<nlohmann::json>& b, double tol,
                       const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["step"], b[i]["step"]) << what;
    const double x = a[i]["loss"].get<double>(), y = b[i]["loss"].get<double>();
    if (tol == 0) {
      EXPECT_EQ(x, y) << what << " step " << a[i]["step"];
    } else {
      EXPECT_NEAR(x, y, tol * std::abs(y)) << what << " step " << a[i]["step"];
    }
    if (a[i].contains("val_loss")) {
      EXPECT_NEAR(a[i]["val_loss"].get<double>(), b[i]["val_loss"].get<double>(), std::max(tol, 1e-12) * 10)
          << what << " eval at step " << a[i]["step"];
    }
  }
}

TEST(TrainDistributed, DataAndContextParallelRunsEqualTheOneProcessRun) {
  SPARROW_REQUIRE_MPI();
  const fs::path root = fresh_dir("curves");
  ASSERT_EQ(run(train_cmd(0, root / "one")), 0);
  ASSERT_EQ(run(train_cmd(2, root / "dp2")), 0);
  ASSERT_EQ(run(train_cmd(2, root / "cp2", "--set dist.context_parallel=2")), 0);
  ASSERT_EQ(run(train_cmd(4, root / "dp2cp2", "--set dist.context_parallel=2")), 0);
  const auto one = metrics(root / "one");
  ASSERT_EQ(one.size(), 12u);
  expect_same_curve(metrics(root / "dp2"), one, curve_tolerance(), "data parallel 2");
  expect_same_curve(metrics(root / "cp2"), one, curve_tolerance(), "context parallel 2");
  expect_same_curve(metrics(root / "dp2cp2"), one, curve_tolerance(), "data 2 x context 2");
  // Context parallel runs log their ring exchange per layer.
  const auto cp = metrics(root / "cp2");
  ASSERT_TRUE(cp.back().contains("ring_hops_computed"));
  EXPECT_EQ(cp.back()["ring_hops_computed"].size(), one.back()["density"].size());
  // Rank 0 alone wrote the folder: one log, each step once, and checkpoints that verify on resume.
  EXPECT_FALSE(fs::exists(root / "dp2" / "metrics.jsonl.1"));
  fs::remove_all(root);
}

TEST(TrainDistributed, ADataParallelRunRepeatsBitForBit) {
  SPARROW_REQUIRE_MPI();
  const fs::path root = fresh_dir("repeat");
  ASSERT_EQ(run(train_cmd(2, root / "a")), 0);
  ASSERT_EQ(run(train_cmd(2, root / "b")), 0);
  expect_same_curve(metrics(root / "a"), metrics(root / "b"), 0, "two data-parallel runs");
  // Recompute changes when gradients become final (inside each block's recomputed backward),
  // and so when their buckets are exchanged, but not one value.
  ASSERT_EQ(run(train_cmd(2, root / "c", "--set train.recompute=true")), 0);
  expect_same_curve(metrics(root / "c"), metrics(root / "a"), 0, "data parallel with recompute");
  fs::remove_all(root);
}

std::string file_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

TEST(TrainDistributed, ShardedOptimizerStateGivesTheSameRunBitForBit) {
  // ZeRO-1 changes where AdamW's state lives, not one value: the curve, the weights and the
  // optimizer state a checkpoint holds (assembled on rank 0) are those of the replicated run.
  SPARROW_REQUIRE_MPI();
  const fs::path root = fresh_dir("zero1");
  ASSERT_EQ(run(train_cmd(2, root / "replicated")), 0);
  ASSERT_EQ(run(train_cmd(2, root / "sharded", "--set dist.shard_optimizer=true")), 0);
  expect_same_curve(metrics(root / "sharded"), metrics(root / "replicated"), 0, "ZeRO-1 against replicated state");
  for (const char* step : {"step-00000006", "step-00000012"})
    for (const char* file : {"weights.safetensors", "optimizer.safetensors"}) {
      const fs::path a = root / "sharded" / "checkpoints" / step / file,
                     b = root / "replicated" / "checkpoints" / step / file;
      ASSERT_TRUE(fs::exists(a)) << a;
      EXPECT_TRUE(file_bytes(a) == file_bytes(b)) << a << " differs from " << b;
    }
  // Its checkpoint resumes sharded over another rank count (4: dp 4) like the replicated one.
  const fs::path ckpt = root / "sharded" / "checkpoints" / "step-00000006";
  ASSERT_EQ(run(train_cmd(4, root / "four", "--set dist.shard_optimizer=true --resume " + ckpt.string())), 0);
  auto whole = metrics(root / "replicated"), resumed = metrics(root / "four");
  whole.erase(whole.begin(), whole.begin() + 6);
  expect_same_curve(resumed, whole, curve_tolerance(), "steps 7-12 at four sharded ranks after 1-6 at two");
  fs::remove_all(root);
}

TEST(TrainDistributed, ACheckpointWrittenAtTwoRanksResumesAtOne) {
  SPARROW_REQUIRE_MPI();
  const fs::path root = fresh_dir("resume");
  ASSERT_EQ(run(train_cmd(2, root / "two")), 0);
  const fs::path ckpt = root / "two" / "checkpoints" / "step-00000006";
  ASSERT_TRUE(fs::exists(ckpt));
  ASSERT_EQ(run(train_cmd(0, root / "one", "--resume " + ckpt.string())), 0);
  auto whole = metrics(root / "two"), resumed = metrics(root / "one");
  whole.erase(whole.begin(), whole.begin() + 6);
  expect_same_curve(resumed, whole, curve_tolerance(), "steps 7-12 at one rank after 1-6 at two");
  fs::remove_all(root);
}

TEST(TrainDistributed, ARankKilledMidRunEndsTheJobWithAnErrorInBoundedTime) {
  SPARROW_REQUIRE_MPI();
  const fs::path dir = fresh_dir("kill");
  const std::string log = (dir.string() + ".log");
  // A long run in the background; its rank 1 is killed once training is under way.
  const std::string cmd = train_cmd(2, dir, "--set train.steps=100000 --set checkpoint.every=0 --set eval.every=0");
  FILE* p = popen(("OMP_NUM_THREADS=1 " + cmd + " > " + log + " 2>&1; echo $?").c_str(), "r");
  ASSERT_NE(p, nullptr);
  pid_t victim = 0;
  for (int i = 0; i < 600 && !victim; ++i) {  // up to 60 s for the run to start training
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (metrics(dir).size() < 2) continue;
    for (const auto& e : fs::directory_iterator("/proc")) {
      const std::string pid = e.path().filename().string();
      if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream env(e.path() / "environ");
      std::string all((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
      std::ifstream cl(e.path() / "cmdline");
      std::string args((std::istreambuf_iterator<char>(cl)), std::istreambuf_iterator<char>());
      if (all.find(std::string("OMPI_COMM_WORLD_RANK=1") + '\0') != std::string::npos &&
          args.find(dir.string()) != std::string::npos && args.find("/train") != std::string::npos)
        victim = static_cast<pid_t>(std::stol(pid));
    }
  }
  ASSERT_GT(victim, 0) << "rank 1 of the run was not found";
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  std::array<char, 64> buf{};
  std::string status;
  while (fgets(buf.data(), buf.size(), p)) status += buf.data();  // returns when mpirun has ended
  pclose(p);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(waited, 30.0) << "the surviving rank should be ended promptly, not hang";
  EXPECT_NE(std::stoi(status), 0) << "the job must fail";
  std::ifstream f(log);
  const std::string out((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(out.find("signal 9"), std::string::npos) << "the launcher names the killed rank: " << out;
  fs::remove_all(dir);
  fs::remove(log);
}

TEST(TrainDistributed, ALaunchThatDisagreesWithTheConfigIsRefused) {
  SPARROW_REQUIRE_MPI();
  const fs::path root = fresh_dir("refuse");
  for (const std::string bad :
       {"--set dist.ranks=4", "--set dist.context_parallel=3", "--set dist.backend=none", "--set train.batch_size=3"}) {
    const std::string log = root.string() + ".log";
    fs::create_directories(root);
    const int st =
        std::system(("OMP_NUM_THREADS=1 " + train_cmd(2, root / "run", bad) + " > " + log + " 2>&1").c_str());
    EXPECT_NE(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0) << bad;
    std::ifstream f(log);
    const std::string out((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const std::string key = bad.substr(6, bad.find('=') - 6);  // "dist.ranks", …
    EXPECT_NE(out.find(key), std::string::npos) << bad << ": the error names the key: " << out;
    fs::remove(log);
  }
  fs::remove_all(root);
}

}  // namespace
