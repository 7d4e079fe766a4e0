// The layout cache behind get_layout (block_layout.h): a bounded LRU of built layouts keyed by
// every parameter that shapes one. These hooks are for tests, tools and memory-conscious callers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "attention/attention_config.h"

namespace sparrow::attn {

struct LayoutCacheStats {
  int64_t hits = 0, misses = 0, evictions = 0;
  size_t entries = 0, bytes = 0;  // held now
  size_t max_entries = 0, max_bytes = 0;
};

LayoutCacheStats layout_cache_stats();
void layout_cache_clear();
// Bounds: at most max_entries layouts and max_bytes of them; the newest is always kept, even
// when it alone exceeds max_bytes. Shrinking evicts least-recently-used entries at once.
void set_layout_cache_limits(size_t max_entries, size_t max_bytes);
// The key: every parameter that shapes the layout (exact bits of the sparsity).
std::string layout_cache_key(const AttentionConfig& cfg, int64_t seq_len, int64_t num_heads, bool causal);

}  // namespace sparrow::attn
