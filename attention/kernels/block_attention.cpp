// block_attention: checks, the one autograd node, and the device dispatch. The node saves
// q, k, v, O and LSE; its backward recomputes the probabilities tile by tile (never N×N).
#include "attention/kernels/block_attention.h"

#include <cmath>

#include "attention/kernels/cpu/block_attention.h"
#include "attention/kernels/cuda/block_attention.h"
#include "attention/kernels/cuda/sm90_dq_sums.h"
#include "attention/kernels/qkv_checks.h"
#include "framework/autograd/node.h"
#include "framework/core/dispatch.h"

namespace sparrow::attn {
namespace {

// A contiguous copy with no history (the kernels read raw rows); t itself when already so.
Tensor dense_rows(const Tensor& t) {
  if (t.is_contiguous()) return t.detach();
  Tensor c = empty(t.shape(), t.dtype(), t.device());
  copy_(c, t);
  return c;
}

// O and dO as the backward reads them: the CUDA kernels take any row strides (O token-major,
// dO the gradient of its permute; they copy what they cannot read), the CPU ones contiguous rows.
Tensor backward_rows(const Tensor& t) { return t.is_cuda() ? t.detach() : dense_rows(t); }

void check_layout(const BlockLayout& L, int64_t H, int64_t Nq, int64_t Nk) {
  const char* op = "block_attention: ";
  const int64_t key_len = L.key_len ? L.key_len : L.seq_len;
  SPARROW_CHECK(L.block_size > 0, op, "layout block size ", L.block_size);
  SPARROW_CHECK(L.seq_len == Nq && key_len == Nk, op, "layout for ", L.seq_len, " queries × ", key_len,
                " keys, but q has ", Nq, " and k ", Nk);
  const int64_t nqb = (Nq + L.block_size - 1) / L.block_size, nkb = (Nk + L.block_size - 1) / L.block_size;
  SPARROW_CHECK(L.num_q_blocks == nqb && L.num_k_blocks == nkb, op, "layout has ", L.num_q_blocks, "×", L.num_k_blocks,
                " blocks, expected ", nqb, "×", nkb, " at block size ", L.block_size);
  SPARROW_CHECK(L.heads.size() == 1 || static_cast<int64_t>(L.heads.size()) == H, op, "layout has ", L.heads.size(),
                " heads, q has ", H);
  for (const BlockCSR& c : L.heads) {
    SPARROW_CHECK(
        static_cast<int64_t>(c.row_ptr.size()) == nqb + 1 && static_cast<int64_t>(c.col_ptr.size()) == nkb + 1, op,
        "layout CSR has ", c.row_ptr.size(), " row pointers and ", c.col_ptr.size(), " column pointers (expected ",
        nqb + 1, " and ", nkb + 1, "; was build_transpose called?)");
    SPARROW_CHECK(c.row_ptr.front() == 0 && c.row_ptr.back() == c.nnz() && c.col_ptr.front() == 0 &&
                      c.col_ptr.back() == c.nnz() && c.row_idx.size() == c.col_idx.size(),
                  op, "layout CSR pointers do not match its ", c.nnz(), " entries");
    for (int32_t j : c.col_idx) SPARROW_CHECK(j >= 0 && j < nkb, op, "layout key block ", j, " outside [0, ", nkb, ")");
    for (int32_t i : c.row_idx)
      SPARROW_CHECK(i >= 0 && i < nqb, op, "layout query block ", i, " outside [0, ", nqb, ")");
  }
}

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const BlockAttentionArgs& args) {
  check_qkv_tensors("block_attention", q, k, v);
  SPARROW_CHECK(q.dtype() == DType::F32 || q.dtype() == DType::F64 || q.dtype() == DType::BF16,
                "block_attention: unsupported dtype ", dtype_name(q.dtype()));
  SPARROW_CHECK(q.size(3) > 0, "block_attention: head dim 0 in q ", shape_str(q.shape()));
  if (args.layout)
    check_layout(*args.layout, q.size(1), q.size(2), k.size(2));
  else
    SPARROW_CHECK(args.block_size > 0, "block_attention: block size ", args.block_size);
  if (args.device_layout)  // its geometry is checked by the CUDA kernels' front end
    SPARROW_CHECK(q.is_cuda() && args.layout == nullptr, "block_attention: a device layout with ",
                  args.layout ? "a host layout too" : "tensors on the CPU", " (", describe(q), ")");
  SPARROW_CHECK(args.key_last.empty() || static_cast<int64_t>(args.key_last.size()) == k.size(2),
                "block_attention: key_last has ", args.key_last.size(), " entries for ", k.size(2), " keys");
  SPARROW_CHECK(args.scale >= 0 && std::isfinite(args.scale), "block_attention: softmax scale ", args.scale);
}

BlockAttentionForward run_forward(const Tensor& q, const Tensor& k, const Tensor& v, const BlockAttentionArgs& a) {
  return SPARROW_DISPATCH(q.device(), block_attention_forward, q, k, v, a);
}

BlockAttentionGrads run_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                 const Tensor& lse, const Tensor& dout, const BlockAttentionArgs& a) {
  return SPARROW_DISPATCH(q.device(), block_attention_backward, q, k, v, out, lse, dout, a);
}

// The args with block size and scale resolved.
BlockAttentionArgs resolved(const BlockAttentionArgs& args, int64_t D) {
  BlockAttentionArgs a = args;
  if (a.layout) a.block_size = a.layout->block_size;
  if (a.scale == 0) a.scale = 1.0 / std::sqrt(static_cast<double>(D));
  return a;
}

}  // namespace

BlockAttentionForward block_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                              const BlockAttentionArgs& args) {
  check_inputs(q, k, v, args);
  return run_forward(dense_rows(q), dense_rows(k), dense_rows(v), resolved(args, q.size(3)));
}

BlockAttentionGrads block_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                             const Tensor& lse, const Tensor& dout, const BlockAttentionArgs& args) {
  check_inputs(q, k, v, args);
  SPARROW_CHECK(out.shape() == q.shape() && dout.shape() == q.shape(), "block_attention backward: O ",
                shape_str(out.shape()), " and dO ", shape_str(dout.shape()), " for q ", shape_str(q.shape()));
  return run_backward(dense_rows(q), dense_rows(k), dense_rows(v), backward_rows(out), dense_rows(lse),
                      backward_rows(dout), resolved(args, q.size(3)));
}

Tensor block_attention(const Tensor& q, const Tensor& k, const Tensor& v, const BlockAttentionArgs& args) {
  check_inputs(q, k, v, args);
  const BlockAttentionArgs a = resolved(args, q.size(3));
  const Tensor qc = dense_rows(q), kc = dense_rows(k), vc = dense_rows(v);
  BlockAttentionForward f = run_forward(qc, kc, vc, a);
  Tensor out = f.out;
  if (out.dtype() != q.dtype()) {  // bf16 on the CPU: O kept in f32 for backward, returned in bf16
    out = empty(q.shape(), q.dtype(), q.device());
    copy_(out, f.out);
  }
  if (!needs_grad({&q, &k, &v})) return out;
  // Saved: the inputs' rows, the full-precision O (detached: the node must not own its output)
  // and LSE. The args copy carries key_last and the layout owner, if any.
  const Tensor o_saved = f.out.detach(), lse = f.lse;
  return record(out, "block_attention", {q, k, v}, [qc, kc, vc, o_saved, lse, a](const Tensor& g) {
    SPARROW_CHECK(g.shape() == qc.shape(), "block_attention backward: gradient ", shape_str(g.shape()),
                  " for an output ", shape_str(qc.shape()));
    const Tensor dout = g.device() == qc.device() ? g : g.to(qc.device());
    BlockAttentionGrads gr = run_backward(qc, kc, vc, o_saved, lse, backward_rows(dout), a);
    return std::vector<Tensor>{gr.dq, gr.dk, gr.dv};
  });
}

double block_attention_backward_scratch_bytes(int64_t bh, int64_t heads, int64_t nq, int64_t d, Device device) {
  return device.is_cuda() ? cuda::sm90_dq_sums_bytes(bh, heads, nq, d) : 0.0;
}

}  // namespace sparrow::attn
