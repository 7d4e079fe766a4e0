// The `eval` program on a run `train` just wrote: position buckets that tile the sequence, the
// trainer's validation loss reproduced bit for bit from the same batches, retrieval accuracy on a
// synthetic task, and one-line errors (exit 1) for a missing run folder, a run without a
// checkpoint, a corrupt checkpoint and a sequence length that is not the checkpoint's.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "common/paths.h"
#include "common/source_corpus.h"

namespace fs = std::filesystem;

namespace {

struct Result {
  int status;
  std::string out;  // stdout and stderr
  std::string err;  // stderr alone
};

Result sh(const std::string& cmd) {
  static int n = 0;
  const fs::path err =
      fs::temp_directory_path() / ("sparrow_eval_err_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
  Result r{0, "", ""};
  FILE* p = popen(("OMP_NUM_THREADS=1 " + cmd + " 2>" + err.string()).c_str(), "r");
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), p)) r.out += buf.data();
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream e(err);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  r.out += r.err;
  fs::remove(err);
  return r;
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

// The last record of metrics.jsonl that carries a val_bpb.
nlohmann::json last_eval_record(const fs::path& run) {
  std::ifstream in(run / "metrics.jsonl");
  nlohmann::json last;
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j.contains("val_bpb")) last = j;
  }
  return last;
}

fs::path temp(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("sparrow_eval_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p;
}

std::string train_cmd(const fs::path& out, const std::string& more) {
  std::string c = sparrow::testing::bin_dir() + "/train --config " + sparrow::testing::source_dir() +
                  "/configs/tiny.yaml --out " + out.string() +
                  " --set train.device=cpu --set schedule.warmup_steps=1 --set train.steps=6 --set eval.every=6"
                  " --set eval.batches=3 --set checkpoint.every=0";
  for (const std::string& o : sparrow::testing::data_overrides())
    if (o.rfind("data.path=", 0) != 0) c += " --set " + o;
  return c + " " + more;
}

std::string eval_bin() { return sparrow::testing::bin_dir() + "/eval"; }

constexpr int kSeq = 64;

// One tiny run, trained once for the suite on a corpus of the project's own sources.
class EvalCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    corpus_ = new fs::path(temp("corpus"));
    run_ = new fs::path(temp("run"));
    sparrow::testing::make_source_corpus(*corpus_);
    Result r = sh(train_cmd(*run_, "--set data.path=" + corpus_->string() + " --set data.val_fraction=0.2"));
    ASSERT_EQ(r.status, 0) << r.out;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*corpus_);
    fs::remove_all(*run_);
    delete corpus_;
    delete run_;
  }
  static fs::path* corpus_;
  static fs::path* run_;
};
fs::path* EvalCli::corpus_ = nullptr;
fs::path* EvalCli::run_ = nullptr;

// Buckets [begin, end) in order from 0 to the sequence length; returns their token counts.
std::vector<int64_t> check_tiling(const nlohmann::json& buckets, const std::vector<int64_t>& edges) {
  std::vector<int64_t> tokens;
  EXPECT_EQ(buckets.size() + 1, edges.size()) << buckets.dump();
  for (size_t i = 0; i < buckets.size() && i + 1 < edges.size(); ++i) {
    EXPECT_EQ(buckets[i]["begin"].get<int64_t>(), edges[i]);
    EXPECT_EQ(buckets[i]["end"].get<int64_t>(), edges[i + 1]);
    tokens.push_back(buckets[i]["tokens"].get<int64_t>());
  }
  return tokens;
}

}  // namespace

TEST_F(EvalCli, BucketsCoverEveryPositionAndReproduceTheTrainersValidationLoss) {
  const fs::path json = temp("out.json");
  Result r = sh(eval_bin() + " --run " + run_->string() + " --first-bucket 8 --json " + json.string());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("held-out documents"), std::string::npos) << r.out;
  const nlohmann::json j = read_json(json);
  EXPECT_EQ(j["step"].get<int64_t>(), 6);
  EXPECT_EQ(j["seq_len"].get<int64_t>(), kSeq);

  // Held-out documents: every window scores each of its 64 positions once, in the bucket of that
  // position: [0,8) [8,16) [16,32) [32,64).
  const nlohmann::json& d = j["documents"];
  const int64_t docs = d["scored"].get<int64_t>();
  ASSERT_GT(docs, 0);
  EXPECT_LE(docs, d["validation_documents"].get<int64_t>());
  const std::vector<int64_t> tok = check_tiling(d["buckets"], {0, 8, 16, 32, 64});
  ASSERT_EQ(tok.size(), 4u);
  EXPECT_EQ(tok[0], 8 * docs);
  EXPECT_EQ(tok[1], 8 * docs);
  EXPECT_EQ(tok[2], 16 * docs);
  EXPECT_EQ(tok[3], 32 * docs);
  for (const auto& b : d["buckets"]) EXPECT_GT(b["bits_per_byte"].get<double>(), 0);

  // The trainer's validation batches (eval.batches = 3 of batch_size 8): the trainer's mean of
  // batch means, recomputed, equals metrics.jsonl's val_bpb at this step exactly.
  const nlohmann::json rec = last_eval_record(*run_);
  ASSERT_EQ(rec["step"].get<int64_t>(), 6) << rec.dump();
  const nlohmann::json& tv = j["trainer_val"];
  EXPECT_EQ(tv["batches"].get<int64_t>(), 3);
  EXPECT_EQ(tv["trainer_bits_per_byte"].get<double>(), rec["val_bpb"].get<double>());
  EXPECT_EQ(tv["trainer_bits_per_byte"].get<double>(), rec["val_loss"].get<double>() / std::log(2.0));
  // Its buckets hold all 3·8·64 targets, and their token-weighted mean is the same number up to
  // the f32 rounding of each cross-entropy mean (every batch holds the same number of tokens).
  const std::vector<int64_t> tv_tok = check_tiling(tv["buckets"], {0, 8, 16, 32, 64});
  int64_t all = 0;
  double nats_bits = 0;
  for (size_t i = 0; i < tv_tok.size(); ++i) {
    all += tv_tok[i];
    nats_bits += tv["buckets"][i]["bits_per_byte"].get<double>() * static_cast<double>(tv_tok[i]);
  }
  EXPECT_EQ(all, 3 * 8 * kSeq);
  EXPECT_NEAR(nats_bits / static_cast<double>(all), rec["val_bpb"].get<double>(), 1e-6 * rec["val_bpb"].get<double>());
  EXPECT_NEAR(tv["bits_per_byte"].get<double>(), rec["val_bpb"].get<double>(), 1e-6 * rec["val_bpb"].get<double>());
  fs::remove(json);
}

TEST_F(EvalCli, WritesEvalJsonInTheRunFolderByDefaultAndTakesACheckpointFolder) {
  const fs::path ckpt = *run_ / "checkpoints" / "step-00000006";
  ASSERT_TRUE(fs::is_directory(ckpt));
  fs::remove(*run_ / "eval.json");
  Result r = sh(eval_bin() + " --checkpoint " + ckpt.string() + " --first-bucket 16");
  ASSERT_EQ(r.status, 0) << r.out;
  const nlohmann::json j = read_json(*run_ / "eval.json");
  EXPECT_EQ(fs::path(j["checkpoint"].get<std::string>()).lexically_normal(), ckpt.lexically_normal());
  check_tiling(j["documents"]["buckets"], {0, 16, 32, 64});
}

TEST_F(EvalCli, AMissingRunFolderIsOneLineNamingIt) {
  const std::string missing = (fs::temp_directory_path() / "sparrow_eval_no_such_run").string();
  Result r = sh(eval_bin() + " --run " + missing);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(missing + ": no such run folder"), std::string::npos) << r.err;
}

TEST_F(EvalCli, ARunFolderWithoutACheckpointIsOneLine) {
  const fs::path run = temp("nockpt");
  fs::create_directories(run);
  fs::copy_file(*run_ / "config.yaml", run / "config.yaml");
  Result r = sh(eval_bin() + " --run " + run.string());
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("no complete checkpoint"), std::string::npos) << r.err;
  fs::remove_all(run);
}

TEST_F(EvalCli, ACorruptCheckpointIsOneLineNamingTheFile) {
  const fs::path run = temp("corrupt");
  fs::copy(*run_, run, fs::copy_options::recursive);
  const fs::path w = run / "checkpoints" / "step-00000006" / "weights.safetensors";
  {
    std::fstream f(w, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-5, std::ios::end);
    char c = 0;
    f.get(c);
    f.seekp(-5, std::ios::end);
    f.put(static_cast<char>(c ^ 0x40));
  }
  Result r = sh(eval_bin() + " --run " + run.string());
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("weights.safetensors"), std::string::npos) << r.err;
  fs::remove_all(run);
}

TEST_F(EvalCli, ASequenceLengthOtherThanTheCheckpointsIsOneLine) {
  const fs::path run = temp("seqlen");
  fs::copy(*run_, run, fs::copy_options::recursive);
  std::ifstream in(run / "config.yaml");
  std::stringstream text;
  text << in.rdbuf();
  in.close();
  const std::string changed = std::regex_replace(text.str(), std::regex("seq_len: 64"), "seq_len: 128");
  ASSERT_NE(changed, text.str());
  std::ofstream(run / "config.yaml") << changed;
  Result r = sh(eval_bin() + " --run " + run.string());
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("sequence length mismatch"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("128"), std::string::npos) << r.err;
  fs::remove_all(run);
}

TEST(EvalCliSynthetic, NeedleAccuracyByDistanceCountsEveryQuery) {
  const fs::path run = temp("needle");
  Result t = sh(train_cmd(run, "--set data.source=synthetic --set data.synthetic.task=needle"));
  ASSERT_EQ(t.status, 0) << t.out;
  const fs::path json = run / "needle.json";
  Result r = sh(eval_bin() + " --run " + run.string() + " --first-bucket 16 --batches 5 --json " + json.string());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("needle accuracy by distance"), std::string::npos) << r.out;
  const nlohmann::json a = read_json(json)["retrieval"];
  EXPECT_EQ(a["task"], "needle");
  // One query per example: 5 batches × 8 rows, each with value_len = 2 scored bytes.
  EXPECT_EQ(a["all"]["queries"].get<int64_t>(), 5 * 8);
  EXPECT_EQ(a["all"]["bytes"].get<int64_t>(), 5 * 8 * 2);
  int64_t q = 0;
  for (size_t i = 0; i < a["buckets"].size(); ++i) {
    q += a["buckets"][i]["queries"].get<int64_t>();
    const int64_t begin = a["buckets"][i]["begin"].get<int64_t>();
    EXPECT_EQ(begin, i == 0 ? 0 : 16 << (i - 1));
  }
  EXPECT_EQ(q, 5 * 8);
  const double acc = a["all"]["accuracy"].get<double>();
  EXPECT_GE(acc, 0.0);
  EXPECT_LE(acc, 1.0);
  fs::remove_all(run);
}
