// `auto`: the backend and sparsity chosen per call from the sequence length N:
//   N ≤ dense_max_seq → dense;
//   else autocfg.sparse_backend at sparsity s = clamp(1 − budget_tokens / N, 0, max_sparsity),
//   i.e. a fixed per-query budget of about budget_tokens keys until the clamp binds.
// One instance per chosen backend is built on first use and kept while the rule gives it the same
// sparsity (a new length that changes it rebuilds that one instance: its config carries the
// sparsity); stats() are the chosen backend's, so stats().backend names the one that ran.
// The sparsity here is a function of N, not of the step: attention.sparsity and its schedule do
// not apply to `auto` (the chosen backend is built with the rule's sparsity and no schedule).
#pragma once
#include <map>
#include <memory>
#include <string>

#include "attention/attention.h"

namespace sparrow::attn {

struct AutoChoice {
  std::string backend;
  double sparsity = 0;
};

// The rule above, for one length.
AutoChoice auto_choice(const AutoConfig& ac, int64_t seq_len);

class AutoAttention : public Attention {
 public:
  explicit AutoAttention(const AttentionConfig& cfg);
  Tensor forward(const AttentionCall& call) override;
  AttentionStats stats() const override { return stats_; }
  std::string name() const override { return "auto"; }
  // Dense does; the sparse backend it may choose decides.
  bool supports_context_parallel() const override;
  // The backend chosen at seq_len decodes (auto_select_decode.cpp).
  Tensor decode(const DecodeCall& call) override;
  // The instance kept for `backend` (null if it has not been chosen yet).
  Attention* instance(const std::string& backend) const;

 private:
  // The instance for `choice`, built on first use, at the choice's sparsity.
  Attention& chosen(const AutoChoice& choice);

  AttentionConfig cfg_;
  AttentionStats stats_;
  struct Instance {
    double sparsity = 0;  // what the rule gave when it was built
    std::unique_ptr<Attention> backend;
  };
  std::map<std::string, Instance> instances_;
};

}  // namespace sparrow::attn
