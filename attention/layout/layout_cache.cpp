// get_layout: build once, then serve the same immutable layout from a bounded LRU. A sparsity
// schedule that changes the target costs one build per new value, and every layer asking for
// the same layout shares one copy.
#include <cstring>
#include <list>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "attention/layout/block_layout.h"
#include "attention/layout/layout_cache.h"
#include "attention/layout/patterns.h"

namespace sparrow::attn {

namespace {

struct Cache {
  using Entry = std::pair<std::string, std::shared_ptr<const BlockLayout>>;
  std::mutex mu;
  std::list<Entry> lru;  // most recent first
  std::unordered_map<std::string, std::list<Entry>::iterator> index;
  LayoutCacheStats stats{0, 0, 0, 0, 0, 32, size_t(2) << 30};

  // Caller holds mu.
  void trim() {
    while (lru.size() > 1 && (lru.size() > stats.max_entries || stats.bytes > stats.max_bytes)) {
      stats.bytes -= lru.back().second->memory_bytes();
      index.erase(lru.back().first);
      lru.pop_back();
      ++stats.evictions;
    }
    if (stats.max_entries == 0 && !lru.empty()) {  // a zero bound keeps nothing
      stats.bytes = 0;
      index.clear();
      lru.clear();
    }
    stats.entries = lru.size();
  }
};

Cache& cache() {
  static Cache c;
  return c;
}

}  // namespace

std::string layout_cache_key(const AttentionConfig& cfg, int64_t seq_len, int64_t num_heads, bool causal) {
  const PatternConfig& p = cfg.pattern;
  uint64_t sparsity_bits;
  std::memcpy(&sparsity_bits, &cfg.sparsity, sizeof sparsity_bits);
  std::ostringstream os;
  os << "N=" << seq_len << ";b=" << cfg.block_size << ";causal=" << causal << ";s=" << std::hex << sparsity_bits
     << std::dec << ";names=";
  for (const std::string& n : p.names) os << n << ',';
  os << ";w=" << p.window << ";rates=";
  for (int64_t r : p.dilation_rates) os << r << ',';
  os << ";stride=" << p.stride << ";g=" << p.global_blocks << ";rand=" << p.random_blocks << ";seed=" << p.seed
     << ";per_head="
     << p.per_head
     // The head count shapes the layout only when each head has its own.
     << ";heads=" << (p.per_head ? num_heads : 1);
  return os.str();
}

std::shared_ptr<const BlockLayout> get_layout(const AttentionConfig& cfg, int64_t seq_len, int64_t num_heads,
                                              bool causal) {
  const std::string key = layout_cache_key(cfg, seq_len, num_heads, causal);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.index.find(key);
    if (it != c.index.end()) {
      c.lru.splice(c.lru.begin(), c.lru, it->second);
      ++c.stats.hits;
      return it->second->second;
    }
    ++c.stats.misses;
  }
  // Built outside the lock (it can take a while and runs rows in parallel); should another
  // thread have inserted the same key meanwhile, its copy wins so callers share one pointer.
  auto built = std::make_shared<const BlockLayout>(build_layout(cfg, seq_len, num_heads, causal));
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.index.find(key);
  if (it != c.index.end()) {
    c.lru.splice(c.lru.begin(), c.lru, it->second);
    return it->second->second;
  }
  c.lru.emplace_front(key, built);
  c.index[key] = c.lru.begin();
  c.stats.bytes += built->memory_bytes();
  c.trim();
  return built;
}

LayoutCacheStats layout_cache_stats() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return cache().stats;
}

void layout_cache_clear() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.lru.clear();
  c.index.clear();
  c.stats.bytes = 0;
  c.stats.entries = 0;
}

void set_layout_cache_limits(size_t max_entries, size_t max_bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.stats.max_entries = max_entries;
  c.stats.max_bytes = max_bytes;
  c.trim();
}

}  // namespace sparrow::attn
