// Auto decode: the backend (and sparsity) chosen for the model's length seq_len — the one every
// training forward ran — decodes.
#include "attention/backends/auto_select.h"

namespace sparrow::attn {

Tensor AutoAttention::decode(const DecodeCall& call) {
  check_decode_call("auto attention", call);
  return chosen(auto_choice(cfg_.autocfg, call.seq_len)).decode(call);
}

}  // namespace sparrow::attn
