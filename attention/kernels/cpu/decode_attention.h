// CPU kernel of decode_attention (kernels/decode_attention.h): one task per (batch, head), rows
// walked in order. Inputs checked by decode_attention(); args.scale resolved (> 0).
#pragma once
#include "attention/kernels/decode_attention.h"

namespace sparrow::attn::cpu {

Tensor decode_attention(const Tensor& q, const Tensor& k, const Tensor& v, const DecodeAttentionArgs& args);

}  // namespace sparrow::attn::cpu
