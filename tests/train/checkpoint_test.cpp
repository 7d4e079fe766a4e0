// Checkpoints that verify themselves and a run folder that loses nothing: corrupt tensors, state
// and names are refused naming the file; --resume auto falls back past a corrupt newest
// checkpoint with a warning; an abandoned trajectory is moved aside, not deleted; retention
// never takes the resume source; a second trainer is kept out; metrics.jsonl is rewritten
// atomically on resume, never in place.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/paths.h"
#include "train/checkpoint.h"
#include "train/config/config.h"
#include "train/metrics.h"
#include "train/run_folder.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace sparrow;
using namespace sparrow::train;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("sparrow_ckpt_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p;
}

// tiny.yaml on the CPU, dropout on (RNG state must round-trip), a checkpoint every 2 steps.
Config tiny(int64_t steps, std::vector<std::string> more = {}) {
  std::vector<std::string> o{"train.steps=" + std::to_string(steps),
                             "checkpoint.every=2",
                             "checkpoint.keep_last=2",
                             "model.dropout=0.1",
                             "eval.every=0",
                             "train.device=cpu",
                             "schedule.warmup_steps=1"};
  for (auto& m : more) o.push_back(m);
  for (const std::string& d : sparrow::testing::data_overrides()) o.push_back(d);
  return load_config(sparrow::testing::source_dir() + "/configs/tiny.yaml", o);
}

RunResult run(const Config& c, const fs::path& dir, const std::string& resume = "") {
  RunOptions o;
  o.out_dir = dir.string();
  o.resume = resume;
  return run_training(c, o);
}

std::vector<nlohmann::json> read_metrics(const fs::path& run) {
  std::vector<nlohmann::json> out;
  std::ifstream f(run / "metrics.jsonl");
  std::string line;
  while (std::getline(f, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
void spit(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary | std::ios::trunc) << s; }

// Flips one bit in the last tensor's data of a safetensors file; returns that tensor's name.
std::string flip_last_tensor_bit(const fs::path& p) {
  std::string b = slurp(p);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(b[size_t(i)]);
  nlohmann::json h = nlohmann::json::parse(b.substr(8, n));
  std::string last;
  uint64_t end = 0;
  for (auto it = h.begin(); it != h.end(); ++it)
    if (it.key() != "__metadata__" && it.value()["data_offsets"][1].get<uint64_t>() > end) {
      end = it.value()["data_offsets"][1].get<uint64_t>();
      last = it.key();
    }
  b[b.size() - 3] ^= 0x04;
  spit(p, b);
  return last;
}

fs::path ckpt(const fs::path& run, int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return run / "checkpoints" / buf;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

void expect_same_losses(const fs::path& a, const fs::path& b) {
  auto ma = read_metrics(a), mb = read_metrics(b);
  ASSERT_EQ(ma.size(), mb.size());
  for (size_t i = 0; i < ma.size(); ++i) {
    EXPECT_EQ(ma[i]["step"], mb[i]["step"]);
    EXPECT_EQ(ma[i]["loss"].get<double>(), mb[i]["loss"].get<double>()) << "step " << i + 1;
  }
}

}  // namespace

TEST(Checkpoint, EveryCheckpointWrittenVerifies) {
  fs::path dir = fresh_dir("verifies");
  run(tiny(4), dir);
  auto all = list_checkpoints(dir.string());
  ASSERT_EQ(all.size(), 2u);
  for (auto& c : all) {
    TrainState s;
    ASSERT_NO_THROW(s = verify_checkpoint(c)) << c;
    EXPECT_TRUE(s.verified);
  }
  EXPECT_EQ(verify_checkpoint(all.back()).step, 4);
  fs::remove_all(dir);
}

TEST(Checkpoint, ExplicitResumeFromAFlippedTensorBitFailsNamingFileAndTensor) {
  fs::path dir = fresh_dir("flipped");
  run(tiny(4), dir);
  const fs::path w = ckpt(dir, 4) / "weights.safetensors";
  const std::string tensor = flip_last_tensor_bit(w);
  const std::string msg = error_of([&] { run(tiny(6), dir, ckpt(dir, 4).string()); });
  EXPECT_NE(msg.find(w.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("'" + tensor + "' fails its checksum"), std::string::npos) << msg;
  EXPECT_THROW(verify_checkpoint(ckpt(dir, 4).string()), CheckpointError);
  // The optimizer file is checked the same way.
  fs::path dir2 = fresh_dir("flipped_opt");
  run(tiny(4), dir2);
  const fs::path o = ckpt(dir2, 4) / "optimizer.safetensors";
  flip_last_tensor_bit(o);
  const std::string msg2 = error_of([&] { verify_checkpoint(ckpt(dir2, 4).string()); });
  EXPECT_NE(msg2.find(o.string()), std::string::npos) << msg2;
  fs::remove_all(dir);
  fs::remove_all(dir2);
}

TEST(Checkpoint, AStateJsonWithAChangedValueIsRefused) {
  fs::path dir = fresh_dir("state_flip");
  run(tiny(4), dir);
  const fs::path s = ckpt(dir, 4) / "state.json";
  std::string text = slurp(s);
  const size_t at = text.find("\"tokens_seen\": ");
  ASSERT_NE(at, std::string::npos);
  text[at + 15] = text[at + 15] == '1' ? '2' : '1';  // still valid JSON, another number
  spit(s, text);
  const std::string msg = error_of([&] { verify_checkpoint(ckpt(dir, 4).string()); });
  EXPECT_NE(msg.find(s.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("fails its checksum"), std::string::npos) << msg;
  fs::remove_all(dir);
}

TEST(Checkpoint, AStateWhoseStepDisagreesWithItsFolderIsRefused) {
  fs::path dir = fresh_dir("renamed");
  run(tiny(4), dir);
  fs::rename(ckpt(dir, 4), ckpt(dir, 6));  // state.json says 4, its folder says 6
  const std::string msg = error_of([&] { verify_checkpoint(ckpt(dir, 6).string()); });
  EXPECT_NE(msg.find("records step 4 but its folder is step-00000006"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { run(tiny(8), dir, ckpt(dir, 6).string()); }).find("step-00000006"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Checkpoint, ResumeAutoFallsBackPastACorruptNewestWithAWarningNamingBoth) {
  fs::path straight = fresh_dir("fallback_ref"), dir = fresh_dir("fallback");
  run(tiny(6), straight);
  RunOptions part;
  part.out_dir = dir.string();
  part.stop_after = 4;
  run_training(tiny(6), part);  // checkpoints step-2 and step-4
  flip_last_tensor_bit(ckpt(dir, 4) / "weights.safetensors");
  ::testing::internal::CaptureStdout();
  RunResult r = run(tiny(6), dir, "auto");
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(r.steps_done, 6);
  EXPECT_NE(out.find("warning: refusing checkpoint " + ckpt(dir, 4).string()), std::string::npos) << out;
  EXPECT_NE(out.find("resuming from " + ckpt(dir, 2).string()), std::string::npos) << out;
  EXPECT_NE(out.find("resumed from " + ckpt(dir, 2).string() + " at step 2"), std::string::npos) << out;
  // The refused checkpoint is moved aside, not deleted, and the history is the straight run's.
  int aside = 0;
  for (auto& e : fs::recursive_directory_iterator(dir / "abandoned")) aside += e.path().filename() == "step-00000004";
  EXPECT_EQ(aside, 1);
  expect_same_losses(straight, dir);
  fs::remove_all(straight);
  fs::remove_all(dir);
}

TEST(Checkpoint, ResumeAutoWithEveryCheckpointCorruptRefusesRatherThanStartingOver) {
  fs::path dir = fresh_dir("all_corrupt");
  run(tiny(4), dir);
  for (auto& c : list_checkpoints(dir.string())) flip_last_tensor_bit(fs::path(c) / "optimizer.safetensors");
  const std::string msg = error_of([&] { run(tiny(6), dir, "auto"); });
  EXPECT_NE(msg.find("no checkpoint in"), std::string::npos) << msg;
  EXPECT_NE(msg.find("fails its checksum"), std::string::npos) << msg;
  EXPECT_EQ(read_metrics(dir).size(), 4u);  // nothing rewritten
  fs::remove_all(dir);
}

TEST(Checkpoint, ResumingFromAnOlderCheckpointMovesTheLaterOnesAsideAndKeepsTheSource) {
  fs::path dir = fresh_dir("older");
  run(tiny(8), dir);  // step-6 and step-8 remain (keep_last 2)
  ASSERT_TRUE(fs::exists(ckpt(dir, 6)));
  // Back to step 6 and on to 10 with another config: steps 7–8 of the first run are abandoned.
  run(tiny(10), dir, ckpt(dir, 6).string());
  std::vector<std::string> names;
  for (auto& c : list_checkpoints(dir.string())) names.push_back(fs::path(c).filename().string());
  // step-6 was resumed from: retention (keep 2) keeps it beside the two newest.
  EXPECT_EQ(names, (std::vector<std::string>{"step-00000006", "step-00000008", "step-00000010"}));
  // The abandoned step-8 and its metrics records sit under abandoned/<timestamp>/.
  fs::path aside;
  for (auto& e : fs::directory_iterator(dir / "abandoned")) aside = e.path();
  ASSERT_FALSE(aside.empty());
  EXPECT_NO_THROW(verify_checkpoint((aside / "step-00000008").string()));
  std::ifstream f(aside / "metrics.jsonl");
  std::string line;
  std::vector<int64_t> steps;
  while (std::getline(f, line)) steps.push_back(nlohmann::json::parse(line)["step"].get<int64_t>());
  EXPECT_EQ(steps, (std::vector<int64_t>{7, 8}));
  // --resume auto takes the new trajectory's newest, never the abandoned one.
  auto latest = latest_checkpoint(dir.string());
  ASSERT_TRUE(latest);
  EXPECT_EQ(verify_checkpoint(*latest).step, 10);
  fs::remove_all(dir);
}

TEST(Checkpoint, AnotherModelConfigurationIsRefusedNamingTheKey) {
  fs::path dir = fresh_dir("other_model");
  run(tiny(4), dir);
  // Same shapes, another model: only the recorded configuration tells them apart.
  try {
    run(tiny(6, {"model.n_heads=2"}), dir, "auto");
    FAIL() << "accepted";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.n_heads: 4 there but model.n_heads: 2 here"), std::string::npos) << msg;
    EXPECT_NE(msg.find(ckpt(dir, 4).string()), std::string::npos) << msg;
  }
  EXPECT_TRUE(fs::exists(ckpt(dir, 4)));  // refused, not moved or deleted
  // Keys a resume may change (more steps, another lr) pass.
  EXPECT_NO_THROW(run(tiny(6, {"optim.lr=1e-3"}), dir, "auto"));
  fs::remove_all(dir);
}

TEST(RunFolder, ASecondTrainerIsKeptOutNamingTheFolderAndThePid) {
  fs::path dir = fresh_dir("locked");
  fs::create_directories(dir);
  {
    RunFolderLock held(dir.string());
    try {
      run(tiny(2), dir);
      FAIL() << "a second trainer got in";
    } catch (const RunFolderError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(dir.string()), std::string::npos) << msg;
      EXPECT_NE(msg.find("pid " + std::to_string(::getpid())), std::string::npos) << msg;
    }
    EXPECT_FALSE(fs::exists(dir / "metrics.jsonl"));
  }
  EXPECT_NO_THROW(run(tiny(2), dir));  // released with its holder
  fs::remove_all(dir);
}

TEST(Metrics, ResumeReplacesTheLogAtomicallyNeverTruncatingItInPlace) {
  fs::path dir = fresh_dir("metrics_atomic");
  RunOptions part;
  part.out_dir = dir.string();
  part.stop_after = 5;
  run_training(tiny(8), part);   // checkpoint at 4 and (stopping) at 5
  fs::remove_all(ckpt(dir, 5));  // as if killed after step 5's record but before its checkpoint
  // A torn last line, as a kill mid-write leaves.
  { std::ofstream(dir / "metrics.jsonl", std::ios::app) << "{\"step\": 6, \"lo"; }
  // A hard link keeps the old file: a rewrite in place would change what it shows.
  fs::create_hard_link(dir / "metrics.jsonl", dir / "old.jsonl");
  const std::string before = slurp(dir / "old.jsonl");
  run(tiny(8), dir, "auto");
  EXPECT_EQ(slurp(dir / "old.jsonl"), before);
  auto m = read_metrics(dir);
  ASSERT_EQ(m.size(), 8u);
  for (size_t i = 0; i < m.size(); ++i) EXPECT_EQ(m[i]["step"].get<int64_t>(), int64_t(i) + 1);
  fs::remove_all(dir);
}

TEST(Metrics, AFailedWriteThrowsNamingTheFile) {
  fs::path dir = fresh_dir("metrics_full");
  fs::create_directories(dir);
  fs::create_symlink("/dev/full", dir / "metrics.jsonl");
  MetricsLog log(dir.string(), 0);
  try {
    log.write({{"step", 1}});
    FAIL() << "a write to a full disk went unnoticed";
  } catch (const MetricsError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find((dir / "metrics.jsonl").string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("No space left on device"), std::string::npos) << msg;
  }
  fs::remove_all(dir);
}
