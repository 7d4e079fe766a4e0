#include "train/eval/evaluate_run.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "framework/core/error.h"
#include "framework/nn/parameter_buffer.h"
#include "framework/optim/adamw.h"
#include "models/transformer.h"
#include "train/checkpoint.h"
#include "train/data/data.h"
#include "train/data/synthetic.h"
#include "train/model_from_config.h"
#include "train/resume_check.h"

namespace fs = std::filesystem;

namespace sparrow::train {
namespace {

[[noreturn]] void refuse(const std::string& msg) { throw EvalError(msg); }

Device pick_device(const std::string& want) {
  if (want == "cpu") return Device::cpu();
  if (want == "cuda") {
    if (!cuda_available()) refuse("device 'cuda' asked for but no CUDA device is available; use --device cpu");
    return Device::cuda(0);
  }
  if (want != "auto") refuse("--device: expected auto, cpu or cuda, got '" + want + "'");
  return cuda_available() ? Device::cuda(0) : Device::cpu();
}

// The checkpoint must hold this model (check_resumable: model and data keys) at this sequence
// length: positions past the length it was trained at are ones it never learned.
void check_checkpoint(const Config& cfg, const std::string& config_file, const TrainState& st, const std::string& dir) {
  try {
    check_resumable(cfg, st, dir);
  } catch (const ConfigError& e) {
    refuse(std::string(e.what()) + " (" + config_file + ")");
  }
  const std::optional<int64_t> trained = trained_seq_len(st, dir);
  if (trained && *trained != cfg.train.seq_len)
    refuse("sequence length mismatch: " + config_file + " has train.seq_len " + std::to_string(cfg.train.seq_len) +
           " but checkpoint " + dir + " was trained at " + std::to_string(*trained));
}

// metrics.jsonl's val_bpb at `step`, if that record has one (a torn or foreign line is skipped).
std::optional<double> recorded_val_bpb(const fs::path& run, int64_t step) {
  std::ifstream in(run / "metrics.jsonl");
  std::optional<double> v;
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.value("step", int64_t{-1}) == step && j.contains("val_bpb") && j["val_bpb"].is_number())
      v = j["val_bpb"].get<double>();
  }
  return v;
}

// Windows of seq_len+1 tokens from the starts of the validation documents that hold one, in
// batches of at most batch_size rows.
std::vector<Batch> document_windows(const Corpus& c, const TokenRange& val, int64_t T, int64_t batch_size,
                                    int64_t max_docs) {
  std::vector<int64_t> starts;
  const auto& ds = c.doc_starts();
  for (int64_t d = val.first_doc; d < val.end_doc; ++d) {
    if (max_docs > 0 && static_cast<int64_t>(starts.size()) >= max_docs) break;
    const int64_t len = ds[size_t(d) + 1] - ds[size_t(d)] - 1;  // the separator follows the text
    if (len >= T + 1) starts.push_back(ds[size_t(d)]);
  }
  std::vector<Batch> out;
  for (size_t i = 0; i < starts.size(); i += size_t(batch_size)) {
    const int64_t rows = std::min<int64_t>(batch_size, static_cast<int64_t>(starts.size() - i));
    Batch b{empty({rows, T}, DType::I32), empty({rows, T}, DType::I32)};
    int32_t* in = b.inputs.data<int32_t>();
    int32_t* tg = b.targets.data<int32_t>();
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* w = c.tokens() + starts[i + size_t(r)];
      for (int64_t t = 0; t < T; ++t) {
        in[r * T + t] = w[t];
        tg[r * T + t] = w[t + 1];
      }
    }
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace

EvalReport evaluate_run(const EvalOptions& opt) {
  EvalReport r;
  const fs::path run = opt.run_dir;
  std::error_code ec;
  if (opt.run_dir.empty()) refuse("no run folder given (--run RUN_FOLDER)");
  if (!fs::is_directory(run, ec)) refuse(opt.run_dir + ": no such run folder");
  const std::string config_file = (run / "config.yaml").string();
  if (!fs::is_regular_file(config_file, ec))
    refuse(config_file + ": missing (a run folder of `train` holds its resolved config.yaml)");
  SPARROW_CHECK(opt.first_bucket > 0, "--first-bucket must be > 0, got ", opt.first_bucket);
  Config cfg;
  try {
    cfg = load_config(config_file);
  } catch (const ConfigError& e) {
    refuse(e.what());
  }
  r.run_dir = opt.run_dir;
  if (opt.checkpoint.empty()) {
    std::optional<std::string> c = latest_checkpoint(opt.run_dir);
    if (!c) refuse(opt.run_dir + ": no complete checkpoint in " + (run / "checkpoints").string());
    r.checkpoint = *c;
  } else {
    if (!fs::is_directory(opt.checkpoint, ec)) refuse(opt.checkpoint + ": no such checkpoint folder (--checkpoint)");
    r.checkpoint = opt.checkpoint;
  }

  const Device dev = pick_device(opt.device.empty() ? cfg.train.device : opt.device);
  const DType compute = cfg.train.dtype == "bf16" ? DType::BF16 : DType::F32;
  const int64_t T = cfg.train.seq_len, B = cfg.train.batch_size;
  r.device = dev.str();
  r.seq_len = T;
  r.batch_size = B;

  // The model as the trainer builds it; the checkpoint's weights verified (CRCs) and loaded.
  Generator init_gen(cfg.train.seed);
  models::TransformerLM model(model_options(cfg), init_gen, dev);
  nn::ParameterBuffer params = nn::ParameterBuffer::pack(model, DType::F32, dev);
  optim::AdamW adam(params);  // load_checkpoint restores the moments too; eval does not use them
  TrainState st;
  try {
    st = load_checkpoint(r.checkpoint, params, adam, [&](const std::string& dir, const TrainState& s) {
      check_checkpoint(cfg, config_file, s, dir);
    });
  } catch (const CheckpointError& e) {
    refuse(e.what());
  }
  r.step = st.step;
  // As the trainer's validation at step S runs: attention told the step just taken, S − 1 (the
  // sparsity schedule's value the weights were last trained at).
  const int64_t attention_step = std::max<int64_t>(st.step - 1, 0);
  model.eval();

  DataPipeline data;
  try {
    data = open_data(cfg);
  } catch (const sparrow::Error& e) {
    refuse(e.what());
  }
  r.data = data.describe();

  if (data.val.valid()) {
    PositionLoss pl(T, opt.first_bucket);
    data.val.set_state(0);  // the trainer's evaluate() scores batches 0..eval.batches−1
    for (int64_t i = 0; i < cfg.eval.batches; ++i) pl.add(model, data.val.next(), attention_step, dev, compute);
    r.trainer_val = std::move(pl);
    r.metrics_val_bpb = recorded_val_bpb(run, st.step);
  }

  if (cfg.data.source == "synthetic") {
    r.task = cfg.data.synthetic.task;
    const SyntheticTask task(cfg.data.synthetic, B, T, cfg.train.seed, /*salt: the validation stream*/ 1);
    RetrievalAccuracy acc(cfg.data.synthetic, T, opt.first_bucket);
    const int64_t n = opt.synthetic_batches > 0 ? opt.synthetic_batches : cfg.eval.batches;
    for (int64_t i = 0; i < n; ++i) acc.add(model, task, static_cast<uint64_t>(i), attention_step, dev, compute);
    r.retrieval = std::move(acc);
  } else {
    if (cfg.data.val_fraction <= 0)
      refuse(config_file + ": data.val_fraction is 0, so the corpus " + cfg.data.path + " holds no held-out documents");
    const TokenRange val = data.corpus->val_range(cfg.data.val_fraction);
    r.val_docs = val.end_doc - val.first_doc;
    const std::vector<Batch> windows = document_windows(*data.corpus, val, T, B, opt.max_docs);
    if (windows.empty())
      refuse(cfg.data.path + ": none of the " + std::to_string(r.val_docs) +
             " validation documents holds train.seq_len+1 = " + std::to_string(T + 1) +
             " tokens (use longer documents: data.doc_bytes, a corpus of long files)");
    PositionLoss pl(T, opt.first_bucket);
    for (const Batch& b : windows) {
      pl.add(model, b, attention_step, dev, compute);
      r.docs_scored += b.inputs.size(0);
    }
    r.documents = std::move(pl);
  }
  std::vector<std::string> names;
  for (const auto& s : model.attention_stats()) names.push_back(s.backend);
  for (size_t i = 0; i < names.size(); ++i) r.backends += (i ? "," : "") + names[i];
  return r;
}

namespace {

nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

nlohmann::json position_json(const PositionLoss& pl) {
  nlohmann::json j;
  j["bits_per_byte"] = number_or_null(pl.bits_per_byte());
  j["trainer_bits_per_byte"] = number_or_null(pl.trainer_bits_per_byte());
  j["batches"] = pl.batches();
  for (const PositionBucket& b : pl.buckets())
    j["buckets"].push_back({{"begin", b.begin},
                            {"end", b.end},
                            {"tokens", b.tokens},
                            {"bits_per_byte", number_or_null(b.bits_per_byte())}});
  return j;
}

std::string span(int64_t a, int64_t b) {
  auto k = [](int64_t v) { return v >= 1024 && v % 1024 == 0 ? std::to_string(v / 1024) + "K" : std::to_string(v); };
  return k(a) + "-" + k(b);
}

std::string position_table(const PositionLoss& pl) {
  std::string s = "  positions        tokens   bits/byte\n";
  char line[128];
  for (const PositionBucket& b : pl.buckets()) {
    std::snprintf(line, sizeof line, "  %-12s %10lld   %9.4f\n", span(b.begin, b.end).c_str(),
                  static_cast<long long>(b.tokens), b.bits_per_byte());
    s += line;
  }
  int64_t tokens = 0;
  for (const PositionBucket& b : pl.buckets()) tokens += b.tokens;
  std::snprintf(line, sizeof line, "  %-12s %10lld   %9.4f\n", "all", static_cast<long long>(tokens),
                pl.bits_per_byte());
  return s + line;
}

}  // namespace

nlohmann::json to_json(const EvalReport& r) {
  nlohmann::json j;
  j["run"] = r.run_dir;
  j["checkpoint"] = r.checkpoint;
  j["step"] = r.step;
  j["seq_len"] = r.seq_len;
  j["device"] = r.device;
  j["attention"] = r.backends;
  j["data"] = r.data;
  if (r.documents) {
    j["documents"] = position_json(*r.documents);
    j["documents"]["validation_documents"] = r.val_docs;
    j["documents"]["scored"] = r.docs_scored;
  }
  if (r.trainer_val) {
    j["trainer_val"] = position_json(*r.trainer_val);
    j["trainer_val"]["metrics_val_bpb"] =
        r.metrics_val_bpb ? nlohmann::json(*r.metrics_val_bpb) : nlohmann::json(nullptr);
  }
  if (r.retrieval) {
    nlohmann::json a;
    a["task"] = r.task;
    auto bucket = [](const DistanceBucket& b) {
      return nlohmann::json{{"begin", b.begin},     {"end", b.end},
                            {"queries", b.queries}, {"accuracy", number_or_null(b.accuracy())},
                            {"bytes", b.bytes},     {"byte_accuracy", number_or_null(b.byte_accuracy())}};
    };
    for (const DistanceBucket& b : r.retrieval->buckets()) a["buckets"].push_back(bucket(b));
    a["all"] = bucket(r.retrieval->total());
    j["retrieval"] = a;
  }
  return j;
}

std::string format_report(const EvalReport& r) {
  char line[512];
  std::snprintf(line, sizeof line, "eval: %s at step %lld (%s), attention %s, seq_len %lld, on %s\n", r.run_dir.c_str(),
                static_cast<long long>(r.step), r.checkpoint.c_str(), r.backends.c_str(),
                static_cast<long long>(r.seq_len), r.device.c_str());
  std::string s = line;
  if (r.documents) {
    std::snprintf(line, sizeof line,
                  "\nheld-out documents: %lld windows of %lld tokens from the starts of %lld validation documents\n",
                  static_cast<long long>(r.docs_scored), static_cast<long long>(r.seq_len),
                  static_cast<long long>(r.val_docs));
    s += line + position_table(*r.documents);
  }
  if (r.retrieval) {
    s +=
        "\n" + r.task + " accuracy by distance (validation stream):\n  distance        queries   accuracy   byte acc\n";
    auto row = [&](const std::string& name, const DistanceBucket& b) {
      std::snprintf(line, sizeof line, "  %-12s %10lld   %8.4f   %8.4f\n", name.c_str(),
                    static_cast<long long>(b.queries), b.accuracy(), b.byte_accuracy());
      s += line;
    };
    for (const DistanceBucket& b : r.retrieval->buckets()) row(span(b.begin, b.end), b);
    row("all", r.retrieval->total());
  }
  if (r.trainer_val) {
    std::snprintf(line, sizeof line, "\ntrainer's validation batches (%lld): %.6f bits/byte",
                  static_cast<long long>(r.trainer_val->batches()), r.trainer_val->trainer_bits_per_byte());
    s += line;
    if (r.metrics_val_bpb) {
      std::snprintf(line, sizeof line, "; metrics.jsonl at step %lld: %.6f", static_cast<long long>(r.step),
                    *r.metrics_val_bpb);
      s += line;
    }
    s += "\n";
  }
  return s;
}

}  // namespace sparrow::train
