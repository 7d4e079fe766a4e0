#include "attention/backends/auto_select.h"

#include "attention/ring/context_parallel.h"

#include <algorithm>
#include <cmath>

#include "framework/core/profile.h"

namespace sparrow::attn {

AutoChoice auto_choice(const AutoConfig& ac, int64_t seq_len) {
  if (seq_len <= ac.dense_max_seq) return {"dense", 0.0};
  const double s = 1.0 - static_cast<double>(ac.budget_tokens) / static_cast<double>(seq_len);
  return {ac.sparse_backend, std::clamp(s, 0.0, ac.max_sparsity)};
}

AutoAttention::AutoAttention(const AttentionConfig& cfg) : cfg_(cfg) {
  const AutoConfig& a = cfg.autocfg;
  SPARROW_CHECK(a.dense_max_seq >= 0, "auto attention: dense_max_seq ", a.dense_max_seq, " (must be ≥ 0)");
  SPARROW_CHECK(a.budget_tokens >= 1, "auto attention: budget_tokens ", a.budget_tokens, " (must be ≥ 1)");
  SPARROW_CHECK(std::isfinite(a.max_sparsity) && a.max_sparsity >= 0 && a.max_sparsity < 1,
                "auto attention: max_sparsity ", a.max_sparsity, " (must be in [0, 1))");
  // The rule sets the sparsity by length; a sparsity or schedule in the config would be ignored
  // silently, so it is refused instead.
  const char* why =
      "but auto chooses the sparsity from the sequence length (attention.auto.budget_tokens, "
      "max_sparsity): remove it or pick a concrete backend";
  SPARROW_CHECK(cfg.sparsity == 0.0, "auto attention: attention.sparsity is ", cfg.sparsity, " ", why);
  SPARROW_CHECK(!cfg.schedule.active(), "auto attention: attention.schedule is set (from ", cfg.schedule.from, " to ",
                cfg.schedule.to, ") ", why);
  SPARROW_CHECK(a.sparse_backend != "auto", "auto attention: sparse_backend must name a concrete backend, got 'auto'");
  const std::vector<std::string> names = attention_backend_names();
  std::string known;
  for (const std::string& n : names)
    if (n != "auto") known += (known.empty() ? "" : ", ") + n;
  SPARROW_CHECK(std::find(names.begin(), names.end(), a.sparse_backend) != names.end(),
                "auto attention: unknown sparse_backend '", a.sparse_backend, "' (known: ", known, ")");
  stats_.backend = "auto";
}

Attention* AutoAttention::instance(const std::string& backend) const {
  auto it = instances_.find(backend);
  return it == instances_.end() ? nullptr : it->second.backend.get();
}

Attention& AutoAttention::chosen(const AutoChoice& choice) {
  Instance& inst = instances_[choice.backend];
  if (!inst.backend || inst.sparsity != choice.sparsity) {
    AttentionConfig c = cfg_;
    c.backend = choice.backend;
    c.sparsity = choice.sparsity;
    c.schedule = SparsitySchedule{};  // the rule's sparsity at every step
    inst.backend = make_attention(c);
    inst.sparsity = choice.sparsity;
  }
  return *inst.backend;
}

bool AutoAttention::supports_context_parallel() const {
  AttentionConfig c = cfg_;
  c.backend = cfg_.autocfg.sparse_backend;
  return make_attention(c)->supports_context_parallel();
}

Tensor AutoAttention::forward(const AttentionCall& call) {
  SPARROW_PROFILE_OP("attention auto_select");
  check_dim("auto attention", call.q, 4);
  // By the whole sequence's length, also when this rank holds a shard of it.
  const AutoChoice choice = auto_choice(cfg_.autocfg, call.context ? call.context->seq_len : call.q.size(2));
  Attention& backend = chosen(choice);
  Tensor out = backend.forward(call);
  stats_ = backend.stats();
  stats_.target_sparsity = choice.sparsity;
  return out;
}

}  // namespace sparrow::attn
