// The attention registry: one line per built-in backend. A new built-in backend is one file pair
// in backends/ plus one line here; code outside the library calls register_attention().
#include "attention/attention.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <mutex>

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

void check_sparsity_targets(const char* op, const AttentionConfig& cfg) {
  const auto in_range = [](double s) { return std::isfinite(s) && s >= 0 && s < 1; };
  SPARROW_CHECK(in_range(cfg.sparsity), op, ": sparsity ", cfg.sparsity, " (must be in [0, 1))");
  const SparsitySchedule& s = cfg.schedule;
  if (!s.active()) return;
  // Both ends in (0, 1): sparsity 0 is "the pattern as configured", not dense, so a schedule
  // through 0 would jump between the configured pattern and a nearly dense one.
  SPARROW_CHECK(in_range(s.from) && in_range(s.to) && s.from > 0 && s.to > 0, op, ": schedule from ", s.from, " to ",
                s.to, " (both must be in (0, 1); 0 is the pattern as configured, not dense)");
  SPARROW_CHECK(s.shape == "linear" || s.shape == "cosine" || s.shape == "step", op, ": schedule shape '", s.shape,
                "' (expected linear, cosine or step)");
  SPARROW_CHECK(s.shape == "step" || s.end > s.start, op, ": schedule end ", s.end, " must be > start ", s.start,
                " for the ", s.shape, " shape");
}

namespace {
template <class Backend>
AttentionFactory factory() {
  return [](const AttentionConfig& cfg) -> std::unique_ptr<Attention> { return std::make_unique<Backend>(cfg); };
}
}  // namespace

namespace {

using Registry = std::vector<std::pair<std::string, AttentionFactory>>;

// The one registry, behind one mutex. Factories are copied out and called with the lock released:
// a factory may itself build backends (auto builds its sparse backend through make_attention).
struct RegistryState {
  std::mutex mutex;
  Registry entries = {
      {"dense", factory<DenseAttention>()},
      {"block_sparse", factory<BlockSparseAttention>()},
      {"hierarchical", factory<HierarchicalAttention>()},
      {"adaptive", factory<AdaptiveAttention>()},
      {"auto", factory<AutoAttention>()},
  };
};

RegistryState& state() {
  static RegistryState s;  // thread-safe initialisation (C++11 magic statics)
  return s;
}

std::string joined_names(const Registry& r) {
  std::string known;
  for (const auto& [n, make] : r) known += (known.empty() ? "" : ", ") + n;
  return known;
}

}  // namespace

void register_attention(std::string name, AttentionFactory make) {
  SPARROW_CHECK(!name.empty(), "register_attention: the backend name is empty");
  SPARROW_CHECK(std::none_of(name.begin(), name.end(), [](unsigned char c) { return std::isspace(c) != 0; }),
                "register_attention: backend name '", name, "' holds whitespace");
  SPARROW_CHECK(static_cast<bool>(make), "register_attention: backend '", name, "' has an empty factory");
  RegistryState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  for (const auto& [n, f] : s.entries)
    SPARROW_CHECK(n != name, "register_attention: backend '", name,
                  "' is already registered (known: ", joined_names(s.entries), ")");
  s.entries.emplace_back(std::move(name), std::move(make));
}

std::vector<std::pair<std::string, AttentionFactory>> attention_registry() {
  RegistryState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.entries;
}

std::vector<std::string> attention_backend_names() {
  RegistryState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  std::vector<std::string> names;
  names.reserve(s.entries.size());
  for (const auto& [name, make] : s.entries) names.push_back(name);
  return names;
}

std::unique_ptr<Attention> make_attention(const AttentionConfig& cfg) {
  AttentionFactory make;
  std::string known;
  {
    RegistryState& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    for (const auto& [name, f] : s.entries)
      if (name == cfg.backend) make = f;
    if (!make) known = joined_names(s.entries);
  }
  if (!make) fail("make_attention: unknown attention backend '", cfg.backend, "' (known: ", known, ")");
  std::unique_ptr<Attention> backend = make(cfg);
  SPARROW_CHECK(backend != nullptr, "make_attention: the factory of backend '", cfg.backend, "' returned null");
  return backend;
}

}  // namespace sparrow::attn
