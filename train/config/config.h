// The trainer's configuration: typed sections with defaults, filled from YAML.
//
//   Config c = load_config("configs/tiny.yaml", {"train.steps=50", "attention.sparsity=0.9"});
//
// Every key of every section is listed once, in train/config/schema.h; the reader, the
// validator, config_help() and to_yaml() all walk that one list, so a key added there is
// parsed, documented and written back without further edits.
//
// Errors are ConfigError with ONE line that says where and what:
//   configs/x.yaml:4:3: unknown key 'model.n_layer': allowed keys are vocab_size, n_layers, ...
//   configs/x.yaml:7:12: key 'train.seq_len' expected an integer, got 'abc'
//   --set train.seq_len=0: key 'train.seq_len' must be > 0, got 0
// Also refused, never run as the defaults or half-read: a config that is not a regular file or
// is over 16 MiB, an empty one, a second YAML document, a key given twice, a number that is not
// finite (YAML's .inf/.nan are read as numbers, then refused), an integer over 2^31 − 1, and
// degenerate values (lr outside (0, 10], eps outside (0, 1], rope_base ≤ 1, lr·weight_decay ≥ 1, ...).
#pragma once
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention/attention_config.h"

namespace sparrow::train {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ModelConfig {
  int64_t vocab_size = 256;  // byte-level tokens
  int64_t n_layers = 4;
  int64_t d_model = 256;
  int64_t n_heads = 4;
  double mlp_ratio = 4.0;
  double dropout = 0.0;
  bool tied_embeddings = true;
  std::string norm = "layernorm";  // layernorm | rmsnorm
  double rope_base = 10000.0;
  bool operator==(const ModelConfig&) const = default;
};

// A layer's sparsity schedule (`attention.schedule`) is attention's own: attn::SparsitySchedule,
// held in AttentionConfig::schedule.
using attn::SparsitySchedule;

// Everything one layer's attention needs.
struct LayerAttention {
  attn::AttentionConfig attn;  // with its sparsity schedule (attn.schedule)
  // Field-by-field over the schema (attn::AttentionConfig has no operator== of its own).
  bool operator==(const LayerAttention& o) const;
};

// `attention:` — the default every layer uses, plus `attention.layers.<i>:` partial overrides
// merged over that default (held here fully resolved).
struct AttentionSection {
  LayerAttention base;
  std::map<int64_t, LayerAttention> layers;
  // The resolved attention of layer i (the override if there is one, else the default).
  const LayerAttention& layer(int64_t i) const;
  bool operator==(const AttentionSection&) const = default;
};

struct SyntheticConfig {
  std::string task = "needle";  // needle | recall
  int64_t distance = 0;         // needle: tokens from the needle to the query; recall: filler gap; 0 = random
  int64_t pairs = 8;            // recall: key/value pairs listed before the queries
  int64_t queries = 4;          // recall: keys asked for (distinct, from the pairs)
  int64_t key_len = 2;          // bytes per key ('A'..'Z')
  int64_t value_len = 2;        // bytes per value ('0'..'9')
  bool operator==(const SyntheticConfig&) const = default;
};

struct DataConfig {
  std::string source = "corpus";  // corpus | synthetic
  std::string path = "/usr/share/dictd/gcide.dict.dz";
  std::string cache_dir = "data/cache";
  double val_fraction = 0.02;
  int64_t doc_bytes = 1 << 20;  // files longer than this are cut into documents of about this size
  SyntheticConfig synthetic;
  bool operator==(const DataConfig&) const = default;
};

struct OptimConfig {
  double lr = 3e-4;
  double min_lr = 3e-5;
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;  // 0: no clipping
  bool operator==(const OptimConfig&) const = default;
};

struct LrScheduleConfig {
  int64_t warmup_steps = 100;
  std::string decay = "cosine";    // cosine | linear | constant | wsd
  double cooldown_fraction = 0.2;  // wsd: the final fraction of steps that decays to min_lr
  bool operator==(const LrScheduleConfig&) const = default;
};

struct TrainSection {
  std::string device = "auto";  // auto | cpu | cuda
  std::string dtype = "f32";    // f32 | bf16
  int64_t seq_len = 256;
  int64_t batch_size = 8;
  int64_t grad_accum = 1;
  int64_t steps = 1000;
  uint64_t seed = 0;
  bool recompute = false;
  int64_t recompute_chunk = 0;      // tokens; 0: off (models/transformer.h)
  std::string cuda_graph = "auto";  // auto | on | off (train/step.h)
  bool operator==(const TrainSection&) const = default;
};

struct EvalConfig {
  int64_t every = 100;  // 0: never
  int64_t batches = 8;
  bool operator==(const EvalConfig&) const = default;
};

struct CheckpointConfig {
  int64_t every = 500;    // 0: only at the end
  int64_t keep_last = 2;  // 0: keep all
  std::string dir = "runs/default";
  bool operator==(const CheckpointConfig&) const = default;
};

struct LogConfig {
  int64_t every = 10;
  bool plain = false;  // plain lines instead of a redrawn progress line
  bool operator==(const LogConfig&) const = default;
};

struct DistConfig {
  int64_t ranks = 0;             // expected world size; 0: whatever the launcher starts
  std::string backend = "auto";  // auto (mpi on the CPU, nccl on GPUs, when launched as several) | none | mpi | nccl
  int64_t context_parallel = 1;  // ranks that share one sequence (ring attention); the rest is data parallel
  bool shard_optimizer = false;  // ZeRO-1: each rank keeps AdamW's state for 1/P of the weights
  bool operator==(const DistConfig&) const = default;
};

struct Config {
  ModelConfig model;
  AttentionSection attention;
  DataConfig data;
  OptimConfig optim;
  LrScheduleConfig schedule;
  TrainSection train;
  EvalConfig eval;
  CheckpointConfig checkpoint;
  LogConfig log;
  DistConfig dist;
  bool operator==(const Config&) const = default;
};

// Reads a YAML file (an empty path: defaults only), applies `a.b=c` overrides in order (values
// parsed as YAML scalars or flow collections, e.g. "attention.pattern.names=[local, global]"),
// resolves per-layer attention overrides and validates every range. Throws ConfigError.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from YAML text; `source_name` stands for the file name in messages.
Config load_config_text(const std::string& yaml_text, const std::string& source_name,
                        const std::vector<std::string>& overrides = {});

// Every key with its default and a one-line description (for `train --help`).
std::string config_help();

// The fully resolved configuration as YAML; load_config_text(to_yaml(c), ...) == c.
// Per-layer overrides are written as their differences from the default.
std::string to_yaml(const Config& c);

}  // namespace sparrow::train
