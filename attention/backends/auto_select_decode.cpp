// Auto decode: the backend (and sparsity) chosen for the model's length seq_len — the one every
// training forward ran — decodes, with its own recompute window.
#include "attention/backends/auto_select.h"

namespace sparrow::attn {

Tensor AutoAttention::decode(const DecodeCall& call) {
  check_decode_call("auto attention", call);
  return chosen(auto_choice(cfg_.autocfg, call.seq_len)).decode(call);
}

int64_t AutoAttention::decode_recompute_from(int64_t pos, int64_t seq_len) {
  return chosen(auto_choice(cfg_.autocfg, seq_len)).decode_recompute_from(pos, seq_len);
}

}  // namespace sparrow::attn
