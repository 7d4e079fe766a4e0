// The attention registry: one line per backend. A new backend is one file pair in backends/
// plus one line here.
#include "attention/attention.h"

#include "attention/backends/adaptive.h"
#include "attention/backends/auto_select.h"
#include "attention/backends/block_sparse.h"
#include "attention/backends/dense.h"
#include "attention/backends/hierarchical.h"

namespace sparrow::attn {

namespace {
template <class Backend>
AttentionFactory factory() {
  return [](const AttentionConfig& cfg) -> std::unique_ptr<Attention> { return std::make_unique<Backend>(cfg); };
}
}  // namespace

const std::vector<std::pair<std::string, AttentionFactory>>& attention_registry() {
  static const std::vector<std::pair<std::string, AttentionFactory>> registry = {
      {"dense", factory<DenseAttention>()},
      {"block_sparse", factory<BlockSparseAttention>()},
      {"hierarchical", factory<HierarchicalAttention>()},
      {"adaptive", factory<AdaptiveAttention>()},
      {"auto", factory<AutoAttention>()},
  };
  return registry;
}

std::vector<std::string> attention_backend_names() {
  std::vector<std::string> names;
  for (const auto& [name, make] : attention_registry()) names.push_back(name);
  return names;
}

std::unique_ptr<Attention> make_attention(const AttentionConfig& cfg) {
  for (const auto& [name, make] : attention_registry())
    if (name == cfg.backend) return make(cfg);
  std::string known;
  for (const std::string& n : attention_backend_names()) known += (known.empty() ? "" : ", ") + n;
  fail("make_attention: unknown attention backend '", cfg.backend, "' (known: ", known, ")");
}

}  // namespace sparrow::attn
