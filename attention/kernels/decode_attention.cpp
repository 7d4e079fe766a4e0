// decode_attention: checks and the device dispatch.
#include "attention/kernels/decode_attention.h"

#include <cmath>

#include "attention/kernels/cpu/decode_attention.h"
#include "attention/kernels/qkv_checks.h"

namespace sparrow::attn {
namespace {

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const DecodeAttentionArgs& args) {
  check_qkv_tensors("decode_attention", q, k, v);
  SPARROW_CHECK(q.dtype() == DType::F32 || q.dtype() == DType::F64, "decode_attention: dtype ", dtype_name(q.dtype()),
                " (decode computes in f32 or f64)");
  SPARROW_CHECK(args.first >= 0, "decode_attention: first position ", args.first);
  SPARROW_CHECK(args.scale >= 0 && std::isfinite(args.scale), "decode_attention: softmax scale ", args.scale);
  SPARROW_CHECK(args.key_last.empty() || static_cast<int64_t>(args.key_last.size()) == k.size(2),
                "decode_attention: key_last has ", args.key_last.size(), " entries for ", k.size(2), " keys");
  const int64_t last_pos = args.first + q.size(2) - 1;
  if (const BlockLayout* L = args.layout) {
    const int64_t key_len = L->key_len ? L->key_len : L->seq_len;
    SPARROW_CHECK(L->block_size > 0 && L->num_q_blocks > last_pos / L->block_size, "decode_attention: the layout has ",
                  L->num_q_blocks, " query blocks of ", L->block_size, ", position ", last_pos, " needs block ",
                  L->block_size > 0 ? last_pos / L->block_size : 0);
    SPARROW_CHECK(k.size(2) <= key_len, "decode_attention: ", k.size(2), " keys for a layout over ", key_len);
    const int64_t B = q.size(0), H = q.size(1), nh = static_cast<int64_t>(L->heads.size());
    SPARROW_CHECK(nh == 1 || nh == H || nh == B * H, "decode_attention: the layout has ", nh, " heads for B = ", B,
                  ", H = ", H, " (expected 1, H or B·H)");
  } else {
    SPARROW_CHECK(args.block_size > 0, "decode_attention: block size ", args.block_size);
  }
}

}  // namespace

Tensor decode_attention(const Tensor& q, const Tensor& k, const Tensor& v, const DecodeAttentionArgs& args) {
  check_inputs(q, k, v, args);
  SPARROW_CHECK(!q.is_cuda(), "decode_attention: the KV-cache decode runs on the CPU only (q is ", describe(q),
                "); load the model on the CPU to sample");
  DecodeAttentionArgs a = args;
  if (a.layout) a.block_size = a.layout->block_size;
  if (a.scale == 0) a.scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  return cpu::decode_attention(q.detach(), k.detach(), v.detach(), a);
}

}  // namespace sparrow::attn
