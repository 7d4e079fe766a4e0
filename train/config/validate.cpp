// Range and consistency checks on a parsed Config. Each failure is one line naming the key and
// where its value was set (file:line:column, or the --set override, or the file for a default).
#include <cmath>
#include <string>

#include "train/config/config_io.h"
#include "train/config/schema.h"

namespace sparrow::train::detail {
namespace {

// The largest value any integer key takes: counts and sizes (blocks, tokens, steps, layers)
// index int32 block tables and multiply with each other, so values near 2^63 would overflow
// into a wrong layout or shape long before they could mean anything.
constexpr int64_t kMaxInt = (int64_t(1) << 31) - 1;

class Checker {
 public:
  explicit Checker(const Origin& o) : origin_(o) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw ConfigError(origin_.where_set(path) + ": key '" + path + "' " + what);
  }

  template <class T>
  static std::string text(T v) {
    if constexpr (std::is_floating_point_v<T>)
      return format_double(v);
    else
      return std::to_string(v);
  }

  template <class T>
  void at_least(const std::string& path, T v, T lo) const {
    if (v < lo) fail(path, "must be >= " + text(lo) + ", got " + text(v));
  }
  template <class T>
  void greater(const std::string& path, T v, T lo) const {
    if (!(v > lo)) fail(path, "must be > " + text(lo) + ", got " + text(v));
  }
  template <class T>
  void at_most(const std::string& path, T v, T hi) const {
    if (v > hi) fail(path, "must be <= " + text(hi) + ", got " + text(v));
  }
  // lo <= v < hi
  void half_open(const std::string& path, double v, double lo, double hi) const {
    if (!(v >= lo && v < hi)) fail(path, "must be in [" + text(lo) + ", " + text(hi) + "), got " + text(v));
  }
  void schedule_end(const std::string& path, double v) const {
    if (!(v > 0 && v < 1))
      fail(path, "must be in (0, 1), got " + text(v) +
                     (v == 0 ? " (sparsity 0 is the pattern as configured, not dense: for a schedule that starts "
                               "nearly dense, give e.g. 0.01)"
                             : ""));
  }
  void not_empty(const std::string& path, const std::string& v) const {
    if (v.empty()) fail(path, "must not be empty");
  }

  void layer(const std::string& p, const LayerAttention& l) const {
    const attn::AttentionConfig& a = l.attn;
    at_least<int64_t>(p + "block_size", a.block_size, 1);
    half_open(p + "sparsity", a.sparsity, 0.0, 1.0);
    at_least(p + "softmax_scale", a.softmax_scale, 0.0);
    if (a.pattern.names.empty()) fail(p + "pattern.names", "must name at least one pattern");
    at_least<int64_t>(p + "pattern.window", a.pattern.window, 0);
    for (size_t i = 0; i < a.pattern.dilation_rates.size(); ++i)
      at_least<int64_t>(p + "pattern.dilation_rates", a.pattern.dilation_rates[i], 1);
    at_least<int64_t>(p + "pattern.stride", a.pattern.stride, 1);
    at_least<int64_t>(p + "pattern.global_blocks", a.pattern.global_blocks, 0);
    at_least<int64_t>(p + "pattern.random_blocks", a.pattern.random_blocks, 0);
    at_least<int64_t>(p + "hierarchical.levels", a.hierarchical.levels, 1);
    at_least<int64_t>(p + "hierarchical.pool", a.hierarchical.pool, 2);
    at_least<int64_t>(p + "hierarchical.fine_window", a.hierarchical.fine_window, 0);
    at_least<int64_t>(p + "adaptive.top_k", a.adaptive.top_k, 0);
    at_least<int64_t>(p + "adaptive.sink_blocks", a.adaptive.sink_blocks, 0);
    at_least<int64_t>(p + "auto.dense_max_seq", a.autocfg.dense_max_seq, 0);
    at_least<int64_t>(p + "auto.budget_tokens", a.autocfg.budget_tokens, 1);
    half_open(p + "auto.max_sparsity", a.autocfg.max_sparsity, 0.0, 1.0);
    if (a.autocfg.sparse_backend == "auto") fail(p + "auto.sparse_backend", "must name a concrete backend, got 'auto'");
    const SparsitySchedule& s = a.schedule;
    if (s.active()) {
      // A schedule moves a target through (0, 1). Sparsity 0 means "the pattern as configured"
      // (bigbird's defaults are ~80% sparse at 4K), not dense, so 0 at either end would jump.
      schedule_end(p + "schedule.from", s.from);
      schedule_end(p + "schedule.to", s.to);
      at_least<int64_t>(p + "schedule.start", s.start, 0);
      if (s.shape != "step" && s.end <= s.start)
        fail(p + "schedule.end", "must be > schedule.start (" + text(s.start) + "), got " + text(s.end));
    }
  }

 private:
  const Origin& origin_;
};

// Walks every key of the schema (schema.h), per-layer overrides included, with the limits
// every number shares whatever its key: a double is finite, an integer at most kMaxInt. The
// key-specific ranges follow in validate_config; this walk means a key added to the schema is
// covered without an edit here.
class NumberLimits {
 public:
  NumberLimits(const Checker& k, std::string prefix) : k_(k), prefix_(std::move(prefix)) {}

  template <class T>
  void field(const char* key, const T& value, const char*) {
    check(prefix_ + key, value);
  }
  void choice(const char*, const std::string&, const std::vector<std::string>&, const char*) {}
  void choice_list(const char*, const std::vector<std::string>&, const std::vector<std::string>&, const char*) {}
  template <class S>
  void section(const char* key, S& sub, const char*) {
    NumberLimits inner(k_, prefix_ + key + ".");
    visit_fields(inner, sub);
  }
  void layer_overrides(const char* key, AttentionSection& a, const char*) {
    for (auto& [i, layer] : a.layers) {
      NumberLimits inner(k_, prefix_ + key + "." + std::to_string(i) + ".");
      visit_fields(inner, layer);
    }
  }

 private:
  void check(const std::string& path, double v) const {
    if (!std::isfinite(v)) k_.fail(path, "must be a finite number, got " + format_double(v));
  }
  void check(const std::string& path, int64_t v) const {
    if (v > kMaxInt)
      k_.fail(path, "must be <= " + std::to_string(kMaxInt) + " (2^31 - 1, the largest integer a key takes), got " +
                        std::to_string(v));
  }
  void check(const std::string&, uint64_t) const {}  // seeds: every value is a seed
  void check(const std::string&, bool) const {}
  void check(const std::string&, const std::string&) const {}
  template <class T>
  void check(const std::string& path, const std::vector<T>& values) const {
    for (const T& v : values) check(path, v);
  }

  const Checker& k_;
  std::string prefix_;
};

}  // namespace

void validate_config(const Config& c, const Origin& origin) {
  Checker k(origin);
  {
    Config walked = c;  // visit_fields takes mutable references; the walk only reads
    NumberLimits limits(k, "");
    visit_fields(limits, walked);
  }
  const ModelConfig& m = c.model;
  if (m.vocab_size != 256)
    k.fail("model.vocab_size", "must be 256 (byte-level tokens), got " + std::to_string(m.vocab_size));
  k.at_least<int64_t>("model.n_layers", m.n_layers, 1);
  k.at_least<int64_t>("model.d_model", m.d_model, 1);
  k.at_least<int64_t>("model.n_heads", m.n_heads, 1);
  // Blame whichever of the pair the user set (n_heads when both or neither were).
  const bool blame_heads = origin.was_set("model.n_heads") || !origin.was_set("model.d_model");
  if (m.d_model % m.n_heads != 0) {
    if (blame_heads)
      k.fail("model.n_heads",
             "must divide model.d_model (" + std::to_string(m.d_model) + "), got " + std::to_string(m.n_heads));
    k.fail("model.d_model",
           "must be divisible by model.n_heads (" + std::to_string(m.n_heads) + "), got " + std::to_string(m.d_model));
  }
  if ((m.d_model / m.n_heads) % 2 != 0)
    k.fail(
        blame_heads ? "model.n_heads" : "model.d_model",
        "gives an odd head dim d_model/n_heads = " + std::to_string(m.d_model / m.n_heads) + " (RoPE needs it even)");
  k.greater("model.mlp_ratio", m.mlp_ratio, 0.0);
  // The MLP's hidden width round(mlp_ratio · d_model) must be a real width.
  const double hidden = std::round(m.mlp_ratio * static_cast<double>(m.d_model));
  if (!(hidden >= 1 && hidden <= static_cast<double>(kMaxInt)))
    k.fail("model.mlp_ratio", "gives an MLP hidden width round(mlp_ratio * d_model) = " + format_double(hidden) +
                                  ", outside [1, " + std::to_string(kMaxInt) + "]");
  k.half_open("model.dropout", m.dropout, 0.0, 1.0);
  // Base 1 makes every RoPE frequency 1 (no position signal); below 1 inverts the spectrum.
  k.greater("model.rope_base", m.rope_base, 1.0);

  k.layer("attention.", c.attention.base);
  for (const auto& [i, layer] : c.attention.layers) {
    std::string p = "attention.layers." + std::to_string(i);
    if (i < 0 || i >= m.n_layers)
      k.fail(p, "is not a layer: model.n_layers is " + std::to_string(m.n_layers) + " (indices 0.." +
                    std::to_string(m.n_layers - 1) + ")");
    k.layer(p + ".", layer);
  }

  const DataConfig& d = c.data;
  if (d.source == "corpus") k.not_empty("data.path", d.path);
  k.half_open("data.val_fraction", d.val_fraction, 0.0, 1.0);
  k.at_least<int64_t>("data.doc_bytes", d.doc_bytes, 1);
  const SyntheticConfig& s = d.synthetic;
  k.at_least<int64_t>("data.synthetic.distance", s.distance, 0);
  k.at_least<int64_t>("data.synthetic.pairs", s.pairs, 1);
  k.at_least<int64_t>("data.synthetic.queries", s.queries, 1);
  if (s.queries > s.pairs)
    k.fail("data.synthetic.queries",
           "must be <= data.synthetic.pairs (" + std::to_string(s.pairs) + "), got " + std::to_string(s.queries));
  k.at_least<int64_t>("data.synthetic.key_len", s.key_len, 1);
  k.at_least<int64_t>("data.synthetic.value_len", s.value_len, 1);

  const OptimConfig& o = c.optim;
  k.greater("optim.lr", o.lr, 0.0);
  // Adam's step is about lr per weight whatever the gradient's scale: past 10 every step
  // overshoots any sensible weight, and the run is noise from the first step.
  k.at_most("optim.lr", o.lr, 10.0);
  k.at_least("optim.min_lr", o.min_lr, 0.0);
  if (o.min_lr > o.lr)
    k.fail("optim.min_lr", "must be <= optim.lr (" + format_double(o.lr) + "), got " + format_double(o.min_lr));
  k.at_least("optim.weight_decay", o.weight_decay, 0.0);
  // Decoupled decay multiplies each weight by 1 - lr·weight_decay a step: at 1 or more that
  // zeroes or flips every weight.
  if (!(o.lr * o.weight_decay < 1.0))
    k.fail("optim.weight_decay", "times optim.lr (" + format_double(o.lr) +
                                     ") must be < 1 (each step scales weights by 1 - lr * weight_decay), got " +
                                     format_double(o.weight_decay));
  k.half_open("optim.beta1", o.beta1, 0.0, 1.0);
  k.half_open("optim.beta2", o.beta2, 0.0, 1.0);
  k.greater("optim.eps", o.eps, 0.0);
  // eps is a guard against dividing by ~0; at 1 and above it dwarfs the gradient's scale.
  k.at_most("optim.eps", o.eps, 1.0);
  k.at_least("optim.grad_clip", o.grad_clip, 0.0);

  k.at_least<int64_t>("schedule.warmup_steps", c.schedule.warmup_steps, 0);
  if (!(c.schedule.cooldown_fraction > 0 && c.schedule.cooldown_fraction <= 1))
    k.fail("schedule.cooldown_fraction", "must be in (0, 1], got " + format_double(c.schedule.cooldown_fraction));

  const TrainSection& t = c.train;
  k.greater<int64_t>("train.seq_len", t.seq_len, 0);
  k.greater<int64_t>("train.batch_size", t.batch_size, 0);
  k.greater<int64_t>("train.grad_accum", t.grad_accum, 0);
  k.greater<int64_t>("train.steps", t.steps, 0);
  k.at_least<int64_t>("train.recompute_chunk", t.recompute_chunk, 0);
  // A decaying lr schedule needs steps after its warmup to decay over.
  if (c.schedule.decay != "constant" && c.schedule.warmup_steps >= t.steps)
    k.fail("schedule.warmup_steps", "must be < train.steps (" + std::to_string(t.steps) + ") for the " +
                                        c.schedule.decay + " decay, got " + std::to_string(c.schedule.warmup_steps));

  k.at_least<int64_t>("eval.every", c.eval.every, 0);
  k.greater<int64_t>("eval.batches", c.eval.batches, 0);
  k.at_least<int64_t>("checkpoint.every", c.checkpoint.every, 0);
  k.at_least<int64_t>("checkpoint.keep_last", c.checkpoint.keep_last, 0);
  k.not_empty("checkpoint.dir", c.checkpoint.dir);
  k.greater<int64_t>("log.every", c.log.every, 0);
  k.at_least<int64_t>("dist.ranks", c.dist.ranks, 0);
  k.at_least<int64_t>("dist.context_parallel", c.dist.context_parallel, 1);
}

}  // namespace sparrow::train::detail
