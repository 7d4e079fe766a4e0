#include "train/memory.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "attention/kernels/block_attention.h"
#include "framework/core/storage.h"
#include "models/transformer.h"
#include "train/progress.h"
#include "train/trainer.h"

namespace sparrow::train {

namespace {
// A field of /proc/self/status or /proc/meminfo, in bytes ("VmRSS:   1234 kB").
double proc_kb_field(const char* file, const char* key) {
  std::ifstream f(file);
  std::string line;
  const std::string k = std::string(key) + ":";
  while (std::getline(f, line))
    if (line.rfind(k, 0) == 0) {
      std::istringstream is(line.substr(k.size()));
      double kb = 0;
      is >> kb;
      return kb * 1024.0;
    }
  return 0;
}
}  // namespace

double estimate_step_bytes(const Config& cfg, Device dev) {
  const double d = double(cfg.model.d_model), L = double(cfg.model.n_layers), V = double(cfg.model.vocab_size);
  const double hidden = std::round(cfg.model.mlp_ratio * d);
  const double params = V * d * (cfg.model.tied_embeddings ? 1 : 2) + L * (4 * d * d + 2 * d * hidden + 9 * d + hidden);
  const double tokens = double(cfg.train.batch_size) * double(cfg.train.seq_len);
  const double elem = cfg.train.dtype == "bf16" ? 2.0 : 4.0;
  // What one block's forward keeps for its backward, a token: its input and norm1's output (the
  // norm's and the qkv projection's inputs), q, k, v (rope_heads keeps nothing), attention's
  // output (the out projection's input too), h and norm2's output, and the MLP's pre- and
  // post-activation (mlp_gelu; fc and silu keep the same): 8·d + 2·hidden values. Dropout keeps
  // no masks: its backward redraws them from the generator's counter (framework/ops/dropout.cpp).
  const double whole_block = (8.0 * d + 2.0 * hidden) * elem;
  // train.recompute_chunk: a block keeps its input, q, k, v, attention's output and h (the chunked
  // segments' inputs: 6·d a token) whole, and one chunk's token-wise activations at a time.
  const double chunk = double(cfg.train.recompute_chunk);
  const bool chunked = chunk > 0 && chunk < double(cfg.train.seq_len);
  const double per_layer_token = chunked ? 6.0 * d * elem : whole_block;
  const double chunk_bytes = chunked ? double(cfg.train.batch_size) * chunk * whole_block : 0.0;
  const double saved =
      (cfg.train.recompute ? tokens * (L * d * elem + per_layer_token) : tokens * L * per_layer_token) + chunk_bytes;
  // The head and loss a chunk of tokens at a time (linear_cross_entropy): one chunk's logits, in
  // the compute dtype and f32, and their gradient, f32 and compute; each token's logsumexp and loss.
  const double chunk_rows = std::min(tokens, double(models::TransformerLM::loss_chunk_rows(cfg.model.vocab_size)));
  const double logits = chunk_rows * V * (4.0 + elem) * 2.0 + tokens * 8.0;
  // The peak of the backward, inside one block: besides what it saved (or, under recompute,
  // replayed), the gradients of its output, of the residual stream, of attention's output and of
  // q, k, v are alive at once (6·d a token) while attention's backward runs, with what that
  // backward holds besides (on a GPU, the block-sparse kernels' f32 dQ sums, taken over groups of
  // heads of at most 2 GiB). Left out, 2M tokens of bench/gpt12.yaml under recompute were
  // estimated at 57 GiB and peaked at 78.3 on an H100.
  const double in_flight = tokens * 6.0 * d * elem;
  const int64_t heads = cfg.model.n_heads;
  const double dq_sums = attn::block_attention_backward_scratch_bytes(
      cfg.train.batch_size * heads, heads, cfg.train.seq_len, cfg.model.d_model / heads, dev);
  return params * 16.0 + saved + logits + in_flight + dq_sums;
}

double available_memory_bytes(Device dev) {
  if (dev.is_cuda()) {
    // What the driver can still give plus what the allocator holds unused.
    const device_memory::Stats s = device_memory::stats(dev);
    return double(s.driver_free) + double(s.reserved - s.allocated);
  }
  return proc_kb_field("/proc/meminfo", "MemAvailable");
}

void check_memory_fits(const Config& cfg, Device dev) {
  // No margin: the estimate is within a few per cent of the measured peaks (memory_test.cpp), and
  // the runs that matter sit close to the card's size (2M tokens of gpt12 peaked at 78.3 of an
  // H100's 79.6 GiB). One it admits that then does not fit stops at its first step with the
  // allocator's out-of-memory error, before any checkpoint is written.
  const double need = estimate_step_bytes(cfg, dev), have = available_memory_bytes(dev);
  if (have > 0 && need > have)
    throw TrainError("train.seq_len=" + std::to_string(cfg.train.seq_len) + " with train.batch_size=" +
                     std::to_string(cfg.train.batch_size) + " needs about " + human_bytes(need) + " on " + dev.str() +
                     " but " + human_bytes(have) + " is available; lower them" +
                     (!cfg.train.recompute             ? " or set train.recompute: true"
                      : cfg.train.recompute_chunk == 0 ? " or set train.recompute_chunk (tokens, e.g. 65536)"
                                                       : ""));
}

double current_memory_bytes(Device dev) {
  if (dev.is_cuda()) return double(device_memory::stats(dev).allocated);
  return proc_kb_field("/proc/self/status", "VmRSS");
}

double peak_memory_bytes(Device dev) {
  if (dev.is_cuda()) return double(device_memory::stats(dev).peak_allocated);
  return proc_kb_field("/proc/self/status", "VmHWM");
}

}  // namespace sparrow::train
