// The attention interface every backend implements, and the registry that builds one by name.
// q, k, v: [B, H, N, D], same dtype and device. Output O: [B, H, N, D], recorded for autograd
// as one fused node (LSE saved in forward, probabilities recomputed in backward).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "attention/attention_config.h"
#include "attention/decode_call.h"
#include "framework/core/tensor.h"

namespace sparrow::attn {

struct ContextParallel;  // ring/context_parallel.h

struct AttentionCall {
  Tensor q, k, v;  // [B, H, N, D]; under context parallelism N is this rank's shard
  bool causal = true;
  int64_t step = 0;  // training step: sparse backends take their target from it (AttentionConfig::sparsity_at)
  const ContextParallel* context = nullptr;  // null: the whole sequence is here
  // The caller reads the output token-major ([B, N, H, D], after permute(0, 2, 1, 3)): a backend
  // that can lay O out so returns a view of it (BlockAttentionArgs::token_major_out); a hint only.
  bool token_major_out = false;
};

// Throws (naming op) unless q, k, v are 4-D and of one shape [B, H, N, D].
void check_qkv(const char* op, const AttentionCall& call);
// Throws (naming op) unless every sparsity cfg can ask for lies in [0, 1): the fixed `sparsity`
// and, where the schedule is on, its `from` and `to` (the values between follow); and the
// schedule's shape is known, with end > start where the shape uses end.
void check_sparsity_targets(const char* op, const AttentionConfig& cfg);

// What the last forward did: the trainer logs it per layer.
struct AttentionStats {
  std::string backend;  // the backend that ran (for `auto`: the one it chose)
  int64_t seq_len = 0;
  int64_t active_blocks = 0;   // (query block, key block) pairs computed, summed over heads
  int64_t dense_blocks = 0;    // pairs the dense attention would compute (causal: lower triangle)
  double density = 1.0;        // active / dense
  double target_sparsity = 0;  // what was asked for (0 for dense)
  double flops = 0;            // forward matmul FLOPs: 4·b²·D per active block pair, per batch·head
  // Context parallelism (ring attention), this rank's last forward: visiting shards computed on
  // and passed by idle, and key/value bytes sent and not sent thanks to the layout.
  int64_t ring_hops_computed = 0, ring_hops_idle = 0;
  int64_t ring_bytes_sent = 0, ring_bytes_skipped = 0;
  // The size of what the forward all-gathered or all-reduced over the context group besides the
  // ring (adaptive: every rank's block means; hierarchical: the summaries' partial sums).
  int64_t ring_collective_bytes = 0;
};

class Attention {
 public:
  virtual ~Attention() = default;
  virtual Tensor forward(const AttentionCall& call) = 0;
  virtual AttentionStats stats() const = 0;
  virtual std::string name() const = 0;

  // Incremental decode (attention/decode_call.h): O [B, H, T, D] for the new queries, no autograd,
  // equal to the forward's rows at those positions. A backend without one refuses with an error
  // naming it (the built-ins all have one, on the CPU).
  virtual Tensor decode(const DecodeCall& call);

  // Whether forward runs on a rank's shard of the sequence when AttentionCall::context is set
  // (ring attention: attention/ring/context_parallel.h), rather than taking the shard for the
  // whole sequence. The built-ins do; a backend registered from outside says so by overriding
  // this, and the model refuses context parallelism for one that does not.
  virtual bool supports_context_parallel() const { return false; }
};

// Builds the backend named by cfg.backend; throws sparrow::Error listing the known names.
std::unique_ptr<Attention> make_attention(const AttentionConfig& cfg);

// The registry: the built-in backends (one line each in registry.cpp), then any registered from
// outside the library with register_attention().
using AttentionFactory = std::function<std::unique_ptr<Attention>(const AttentionConfig&)>;

// Adds a backend under `name`, from then on built by make_attention() and accepted by the
// trainer's config (`attention.backend: <name>`). Thread-safe. Throws sparrow::Error when the
// name is empty or holds whitespace, when the factory is empty, or when the name is already
// taken (built-in or registered before): a backend is never silently replaced.
//   sparrow::attn::register_attention("my_attention", [](const sparrow::attn::AttentionConfig& c) {
//     return std::make_unique<MyAttention>(c);
//   });
void register_attention(std::string name, AttentionFactory factory);

// A snapshot of the registry, in registration order (built-ins first).
std::vector<std::pair<std::string, AttentionFactory>> attention_registry();
std::vector<std::string> attention_backend_names();

}  // namespace sparrow::attn
