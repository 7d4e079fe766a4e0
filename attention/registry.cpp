// The attention registry: one line per backend. A new backend is one file pair in backends/
// plus one line here.
#include "attention/attention.h"

#include "attention/backends/adaptive.h"
#include "attention/backends/auto_select.h"
#include "attention/backends/block_sparse.h"
#include "attention/backends/dense.h"
#include "attention/backends/hierarchical.h"

namespace sparrow::attn {

void check_qkv(const char* op, const AttentionCall& call) {
  check_dim(op, call.q, 4);
  check_dim(op, call.k, 4);
  check_dim(op, call.v, 4);
  SPARROW_CHECK(call.q.shape() == call.k.shape() && call.q.shape() == call.v.shape(), op, ": q ",
                shape_str(call.q.shape()), ", k ", shape_str(call.k.shape()), ", v ", shape_str(call.v.shape()),
                " (expected the same [B, H, N, D])");
}

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
