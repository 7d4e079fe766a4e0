// Everything that configures one layer's attention. train/config fills it from YAML
// (`attention:` and `attention.layers.<i>:`); tools fill it from flags.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "attention/sparsity_schedule.h"

namespace sparrow::attn {

struct PatternConfig {
  // Union of named patterns, e.g. {"local", "global", "random"} or {"bigbird"}.
  std::vector<std::string> names{"bigbird"};
  int64_t window = 3;  // local: blocks on each side (causal: behind) incl. the diagonal's neighbours
  std::vector<int64_t> dilation_rates{2, 4};  // dilated: offsets at multiples of each rate
  int64_t stride = 8;                         // strided/fixed: the Sparse Transformer stride, in blocks
  int64_t global_blocks = 1;                  // global/sink: the first blocks, which see and are seen by all
  int64_t random_blocks = 2;                  // random: key blocks per query row
  uint64_t seed = 0;                          // random: the layout is a pure function of (seed, head, row)
  bool per_head = false;                      // a layout per head (random differs by head) or one shared
};

struct HierarchicalConfig {
  int64_t levels = 2;       // coarse levels above the fine blocks
  int64_t pool = 4;         // each level pools this many blocks of the level below into one summary block
  int64_t fine_window = 2;  // fine blocks each side of the diagonal (causal: behind)
};

struct AdaptiveConfig {
  int64_t top_k = 0;        // key blocks kept per query block; 0: from the sparsity budget
  int64_t sink_blocks = 1;  // always kept (with the diagonal)
};

struct AutoConfig {
  int64_t dense_max_seq = 4096;  // dense up to this length
  std::string sparse_backend = "block_sparse";
  int64_t budget_tokens = 2048;  // then a fixed per-query budget: sparsity = 1 − budget/N
  double max_sparsity = 0.99;    // clamped to this
};

struct AttentionConfig {
  std::string backend = "dense";  // dense | block_sparse | hierarchical | adaptive | auto | ring
  int64_t block_size = 64;
  double sparsity = 0.0;      // target sparsity for sparse backends; 0 = pattern as configured
  SparsitySchedule schedule;  // when active, replaces `sparsity` with its value at the call's step
  PatternConfig pattern;
  HierarchicalConfig hierarchical;
  AdaptiveConfig adaptive;
  AutoConfig autocfg;
  double softmax_scale = 0.0;  // 0: 1/sqrt(D)

  // The target sparsity a forward at `step` (AttentionCall::step) works to: the schedule's value
  // where it is on, else the fixed `sparsity`. Backends with a sparsity read it in forward; the
  // model reports it per layer (TransformerLM::sparsity_targets_at) for graph capture and logs.
  double sparsity_at(int64_t step) const { return schedule.active() ? schedule.at(step) : sparsity; }
};

}  // namespace sparrow::attn
