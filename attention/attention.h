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
#include "framework/core/tensor.h"

namespace sparrow::attn {

struct AttentionCall {
  Tensor q, k, v;      // [B, H, N, D]
  bool causal = true;
  int64_t step = 0;    // training step (the sparsity schedule and adaptive refresh read it)
};

// Throws (naming op) unless q, k, v are 4-D and of one shape [B, H, N, D].
void check_qkv(const char* op, const AttentionCall& call);

// What the last forward did: the trainer logs it per layer.
struct AttentionStats {
  std::string backend;       // the backend that ran (for `auto`: the one it chose)
  int64_t seq_len = 0;
  int64_t active_blocks = 0;  // (query block, key block) pairs computed, summed over heads
  int64_t dense_blocks = 0;   // pairs the dense attention would compute (causal: lower triangle)
  double density = 1.0;       // active / dense
  double target_sparsity = 0; // what was asked for (0 for dense)
  double flops = 0;           // forward matmul FLOPs: 4·b²·D per active block pair, per batch·head
};

class Attention {
 public:
  virtual ~Attention() = default;
  virtual Tensor forward(const AttentionCall& call) = 0;
  virtual AttentionStats stats() const = 0;
  // The schedule sets a new target sparsity (no-op for backends without one).
  virtual void set_sparsity(double) {}
  virtual std::string name() const = 0;
};

// Builds the backend named by cfg.backend; throws sparrow::Error listing the known names.
std::unique_ptr<Attention> make_attention(const AttentionConfig& cfg);

// The registry: one line per backend (in registry.cpp).
using AttentionFactory = std::function<std::unique_ptr<Attention>(const AttentionConfig&)>;
const std::vector<std::pair<std::string, AttentionFactory>>& attention_registry();
std::vector<std::string> attention_backend_names();

}  // namespace sparrow::attn
