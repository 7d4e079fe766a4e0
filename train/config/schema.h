// The one list of configuration keys: name, member, description (and allowed values for enums),
// in the order they are read, documented and written. A visitor V walks it with:
//   v.field(key, member, help)                    int64_t, uint64_t, double, bool, string, lists
//   v.choice(key, string member, allowed, help)   an enum spelled as a string
//   v.choice_list(key, vector<string>, allowed, help)
//   v.section(key, sub_struct, help)              recurses with visit_fields(v, sub_struct)
//   v.layer_overrides(key, AttentionSection&, help)
// Defaults are the struct initialisers in config.h.
#pragma once
#include <string>
#include <vector>

#include "train/config/config.h"

namespace sparrow::train {

// Names the attention registry knows (at the time of the call: register_attention() adds to
// them), and the block patterns attention/layout composes.
std::vector<std::string> attention_backend_choices();
const std::vector<std::string>& attention_pattern_choices();

template <class V>
void visit_fields(V& v, attn::PatternConfig& p) {
  v.choice_list("names", p.names, attention_pattern_choices(), "patterns united into one layout");
  v.field("window", p.window, "local: blocks on each side of the diagonal (causal: behind)");
  v.field("dilation_rates", p.dilation_rates, "dilated: block offsets at multiples of each rate");
  v.field("stride", p.stride, "strided/fixed: Sparse Transformer stride, in blocks");
  v.field("global_blocks", p.global_blocks, "global: leading blocks that see and are seen by all");
  v.field("random_blocks", p.random_blocks, "random: extra key blocks per query row");
  v.field("seed", p.seed, "random: seed of the random blocks");
  v.field("per_head", p.per_head, "a layout per head (else one shared by all heads)");
}

template <class V>
void visit_fields(V& v, attn::HierarchicalConfig& h) {
  v.field("levels", h.levels, "coarse levels above the fine blocks");
  v.field("pool", h.pool, "blocks of the level below pooled into one summary block");
  v.field("fine_window", h.fine_window, "fine blocks on each side of the diagonal (causal: behind)");
}

template <class V>
void visit_fields(V& v, attn::AdaptiveConfig& a) {
  v.field("top_k", a.top_k, "key blocks kept per query block; 0: from the sparsity budget");
  v.field("sink_blocks", a.sink_blocks, "leading key blocks always kept (with the diagonal)");
}

template <class V>
void visit_fields(V& v, attn::AutoConfig& a) {
  v.field("dense_max_seq", a.dense_max_seq, "dense attention up to this sequence length");
  v.choice("sparse_backend", a.sparse_backend, attention_backend_choices(), "backend used above dense_max_seq");
  v.field("budget_tokens", a.budget_tokens, "keys per query above dense_max_seq: sparsity = 1 - budget/N");
  v.field("max_sparsity", a.max_sparsity, "the sparsity is clamped to this");
}

template <class V>
void visit_fields(V& v, SparsitySchedule& s) {
  v.field("from", s.from, "sparsity at the start (the schedule is on when from != to)");
  v.field("to", s.to, "sparsity at the end");
  v.field("start", s.start, "step where the change begins");
  v.field("end", s.end, "step where the change ends (linear, cosine)");
  v.choice("shape", s.shape, {"linear", "cosine", "step"}, "how sparsity moves from `from` to `to`");
}

// The keys of one layer's attention: `attention.*` and `attention.layers.<i>.*` alike.
template <class V>
void visit_fields(V& v, LayerAttention& l) {
  v.choice("backend", l.attn.backend, attention_backend_choices(), "attention backend");
  v.field("block_size", l.attn.block_size, "tokens per attention block");
  v.field("sparsity", l.attn.sparsity, "target sparsity of sparse backends (0: pattern as configured)");
  v.field("softmax_scale", l.attn.softmax_scale, "softmax scale; 0: 1/sqrt(head dim)");
  v.section("pattern", l.attn.pattern, "block_sparse patterns");
  v.section("hierarchical", l.attn.hierarchical, "hierarchical backend");
  v.section("adaptive", l.attn.adaptive, "adaptive backend");
  v.section("auto", l.attn.autocfg, "auto backend: the rule from sequence length to backend");
  v.section("schedule", l.attn.schedule, "sparsity schedule over training steps");
}

template <class V>
void visit_fields(V& v, AttentionSection& a) {
  visit_fields(v, a.base);
  v.layer_overrides("layers", a, "per-layer overrides: {layer index: partial attention keys}");
}

template <class V>
void visit_fields(V& v, ModelConfig& m) {
  v.field("vocab_size", m.vocab_size, "vocabulary; 256 (byte-level tokens)");
  v.field("n_layers", m.n_layers, "transformer blocks");
  v.field("d_model", m.d_model, "model width");
  v.field("n_heads", m.n_heads, "attention heads (must divide d_model; head dim even for RoPE)");
  v.field("mlp_ratio", m.mlp_ratio, "MLP hidden width / d_model");
  v.field("dropout", m.dropout, "dropout probability");
  v.field("tied_embeddings", m.tied_embeddings, "output projection shares the embedding matrix");
  v.choice("norm", m.norm, {"layernorm", "rmsnorm"}, "normalisation");
  v.field("rope_base", m.rope_base, "RoPE frequency base");
}

template <class V>
void visit_fields(V& v, SyntheticConfig& s) {
  v.choice("task", s.task, {"needle", "recall"}, "needle retrieval or associative recall");
  v.field("distance", s.distance, "needle: tokens from needle to query; recall: filler gap; 0: random");
  v.field("pairs", s.pairs, "recall: key/value pairs before the queries");
  v.field("queries", s.queries, "recall: keys asked for");
  v.field("key_len", s.key_len, "bytes per key");
  v.field("value_len", s.value_len, "bytes per value");
}

template <class V>
void visit_fields(V& v, DataConfig& d) {
  v.choice("source", d.source, {"corpus", "synthetic"}, "text corpus or a synthetic long-range task");
  v.field("path", d.path, "corpus: a text file, a .gz/.dz file, or a folder of text files");
  v.field("cache_dir", d.cache_dir, "where the token cache is written");
  v.field("val_fraction", d.val_fraction, "share of tokens (whole trailing documents) held out");
  v.field("doc_bytes", d.doc_bytes, "files longer than this are cut into documents of about this size");
  v.section("synthetic", d.synthetic, "synthetic task");
}

template <class V>
void visit_fields(V& v, OptimConfig& o) {
  v.field("lr", o.lr, "peak learning rate");
  v.field("min_lr", o.min_lr, "learning rate at the end of decay");
  v.field("weight_decay", o.weight_decay, "AdamW decoupled weight decay");
  v.field("beta1", o.beta1, "AdamW beta1");
  v.field("beta2", o.beta2, "AdamW beta2");
  v.field("eps", o.eps, "AdamW epsilon");
  v.field("grad_clip", o.grad_clip, "global gradient-norm clip; 0: off");
}

template <class V>
void visit_fields(V& v, LrScheduleConfig& s) {
  v.field("warmup_steps", s.warmup_steps, "linear warmup steps");
  v.choice("decay", s.decay, {"cosine", "linear", "constant", "wsd"}, "decay after warmup");
  v.field("cooldown_fraction", s.cooldown_fraction, "wsd: final fraction of steps decaying to min_lr");
}

template <class V>
void visit_fields(V& v, TrainSection& t) {
  v.choice("device", t.device, {"auto", "cpu", "cuda"}, "where to train (auto: cuda when present)");
  v.choice("dtype", t.dtype, {"f32", "bf16"}, "compute dtype");
  v.field("seq_len", t.seq_len, "tokens per sequence");
  v.field("batch_size", t.batch_size, "sequences per micro-batch");
  v.field("grad_accum", t.grad_accum, "micro-batches per optimizer step");
  v.field("steps", t.steps, "optimizer steps");
  v.field("seed", t.seed, "seed of initialisation, data order and dropout");
  v.field("recompute", t.recompute, "recompute activations in backward (activation checkpointing)");
  v.field("recompute_chunk", t.recompute_chunk,
          "tokens a chunk when each block's token-wise parts (norms, projections, MLP) are recomputed "
          "chunk by chunk; 0: off. With recompute, bounds a block's replay (long sequences)");
  v.choice("cuda_graph", t.cuda_graph, {"auto", "on", "off"},
           "replay the GPU step as one CUDA graph (auto: when the step can be captured)");
}

template <class V>
void visit_fields(V& v, EvalConfig& e) {
  v.field("every", e.every, "evaluate every this many steps; 0: never");
  v.field("batches", e.batches, "validation batches per evaluation");
}

template <class V>
void visit_fields(V& v, CheckpointConfig& c) {
  v.field("every", c.every, "checkpoint every this many steps; 0: only at the end");
  v.field("keep_last", c.keep_last, "checkpoints kept; 0: all");
  v.field("dir", c.dir, "run folder (config, metrics, checkpoints)");
}

template <class V>
void visit_fields(V& v, LogConfig& l) {
  v.field("every", l.every, "log every this many steps");
  v.field("plain", l.plain, "plain log lines instead of a progress line");
}

template <class V>
void visit_fields(V& v, DistConfig& d) {
  v.field("ranks", d.ranks, "expected number of ranks; 0: as launched");
  v.choice("backend", d.backend, {"auto", "none", "mpi", "nccl"},
           "communicator: auto (mpi on the CPU, nccl on GPUs when launched as several ranks), none (one process only)");
  v.field("context_parallel", d.context_parallel,
          "ranks that split each sequence (ring attention); ranks / context_parallel groups are data parallel");
  v.field("shard_optimizer", d.shard_optimizer,
          "ZeRO-1: each rank keeps AdamW's m and v for 1/ranks of the weights (same updates, less memory)");
}

template <class V>
void visit_fields(V& v, Config& c) {
  v.section("model", c.model, "the transformer");
  v.section("attention", c.attention, "attention of every layer");
  v.section("data", c.data, "training data");
  v.section("optim", c.optim, "AdamW");
  v.section("schedule", c.schedule, "learning-rate schedule");
  v.section("train", c.train, "the run");
  v.section("eval", c.eval, "evaluation");
  v.section("checkpoint", c.checkpoint, "checkpoints");
  v.section("log", c.log, "logging");
  v.section("dist", c.dist, "distributed training");
}

}  // namespace sparrow::train
