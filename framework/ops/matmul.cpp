// matmul: C = op(A)·op(B) over broadcast leading batch dims, op = transpose when its flag is set.
//
// Layout: each operand is described to the kernel as a row-major matrix with a leading dimension
// and a list of per-batch offsets (GemmOperand), so contiguous inputs, transposed views (stored
// column-major: flip the flag instead of copying) and row-sliced views go in without a copy; other
// layouts are made contiguous first.
//
// Gradients (G = dL/dC, shapes as stored):
//   dA = G·op(B)ᵀ            (A not transposed)      dA = op(B)·Gᵀ   (A stored transposed)
//   dB = op(A)ᵀ·G            (B not transposed)      dB = Gᵀ·op(A)   (B stored transposed)
// each itself a matmul with the flags folded in, then summed over broadcast batch dims (sum_to).
#include "framework/ops/cpu/matmul.h"
#include "framework/autograd/node.h"
#include "framework/core/dispatch.h"
#include "framework/core/profile.h"
#include "framework/core/strided.h"
#include "framework/ops/cuda/matmul.h"
#include "framework/ops/matmul_forward.h"
#include "framework/ops/matmul_layout.h"
#include "framework/ops/ops.h"

namespace sparrow {

namespace {

// True when an r×c matrix with strides (sr, sc) is row-major with unit column stride; sets its
// leading dimension. Size-1 dims carry arbitrary strides, so they are normalised first.
bool row_major_ld(int64_t r, int64_t c, int64_t sr, int64_t sc, int64_t* ld) {
  const int64_t min_ld = std::max<int64_t>(c, 1);
  if (c == 1) sc = 1;
  if (r == 1) sr = min_ld;
  if (sc != 1 || sr < min_ld) return false;
  *ld = sr;
  return true;
}

GemmOperand make_operand(Tensor t, bool trans, const Shape& batch_shape) {
  GemmOperand o;
  const int64_t n = t.dim();
  int64_t r = t.shape()[n - 2], c = t.shape()[n - 1];
  int64_t ld = 0;
  if (row_major_ld(r, c, t.strides()[n - 2], t.strides()[n - 1], &ld)) {
    o.trans = trans;
  } else if (row_major_ld(c, r, t.strides()[n - 1], t.strides()[n - 2], &ld)) {
    // A transposed view of a row-major matrix: store it as that matrix, multiply by its transpose.
    std::swap(r, c);
    o.trans = !trans;
  } else {
    t = t.contiguous();  // the input is detached here: no history is recorded
    ld = std::max<int64_t>(c, 1);
    o.trans = trans;
  }
  o.rows = r;
  o.cols = c;
  o.ld = ld;
  // Per-batch offsets: the batch dims broadcast to batch_shape (stride 0 where broadcast).
  Shape own_batch(t.shape().begin(), t.shape().end() - 2), own_strides(t.strides().begin(), t.strides().end() - 2);
  Shape bstrides = broadcast_strides(own_batch, own_strides, batch_shape);
  const int64_t batch = shape_numel(batch_shape);
  o.offsets.resize(batch);
  StridedWalk<1> walk(batch_shape, {&bstrides}, {t.offset()});
  for (int64_t i = 0; i < batch; ++i, walk.next()) o.offsets[i] = walk.offsets()[0];
  o.t = t;
  return o;
}

}  // namespace

namespace detail {

Tensor matmul_forward(const Tensor& a, const Tensor& b, bool ta, bool tb, const Shape& batch_shape, int64_t m,
                      int64_t n, int64_t k, const GemmExtras& extras) {
  Shape out_shape = batch_shape;
  out_shape.push_back(m);
  out_shape.push_back(n);
  const bool with_bias = extras.epilogue == GemmEpilogue::Bias;
  if (extras.applied) *extras.applied = extras.epilogue == GemmEpilogue::None || with_bias;
  if (extras.residual.defined()) {
    const Tensor& r = extras.residual;
    SPARROW_CHECK((extras.epilogue == GemmEpilogue::None || with_bias) && shape_numel(batch_shape) == 1 &&
                      r.is_contiguous() && shape_numel(r.shape()) == m * n && r.dtype() == a.dtype() &&
                      r.device() == a.device(),
                  "matmul: a residual needs batch 1, no GELU epilogue, and a contiguous [", m, ", ", n, "] ",
                  dtype_name(a.dtype()), " tensor on ", a.device().str(), "; got ", describe(r));
  }
  if (shape_numel(out_shape) == 0) return empty(out_shape, a.dtype(), a.device());
  if (k == 0) {
    Tensor z = zeros(out_shape, a.dtype(), a.device());
    if (with_bias) z = add(z, extras.bias);
    return extras.residual.defined() ? add(z, reshape(extras.residual, out_shape)) : z;
  }
  if (a.device().is_cpu() && a.dtype() == DType::BF16) {
    // bf16 on the CPU: widen to f32, multiply (and add the bias and residual), round once at the end.
    GemmExtras wide;
    if (with_bias) {
      wide.epilogue = GemmEpilogue::Bias;
      wide.bias = cast(extras.bias, DType::F32);
    }
    if (extras.residual.defined()) wide.residual = cast(extras.residual, DType::F32);
    Tensor c32 = matmul_forward(cast(a, DType::F32), cast(b, DType::F32), ta, tb, batch_shape, m, n, k, wide);
    return cast(c32, DType::BF16);
  }
  GemmProblem p;
  p.a = make_operand(a, ta, batch_shape);
  p.b = make_operand(b, tb, batch_shape);
  p.batch = shape_numel(batch_shape);
  p.m = m;
  p.n = n;
  p.k = k;
  Tensor out = empty(out_shape, a.dtype(), a.device());
  p.epilogue = extras.epilogue;
  p.bias = extras.bias;
  p.aux = extras.aux;
  p.residual = extras.residual;
  const bool done = SPARROW_DISPATCH(a.device(), matmul, p, out);
  if (extras.applied) *extras.applied = done;
  return out;
}

}  // namespace detail

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  SPARROW_PROFILE_OP("matmul");
  check_same_device("matmul", a, b);
  check_same_dtype("matmul", a, b);
  check_float("matmul", a);
  SPARROW_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: needs operands of at least 2 dims, got ", describe(a), " and ",
                describe(b));
  const int64_t m = a.size(trans_a ? -1 : -2), ka = a.size(trans_a ? -2 : -1);
  const int64_t kb = b.size(trans_b ? -1 : -2), n = b.size(trans_b ? -2 : -1);
  SPARROW_CHECK(ka == kb, "matmul: inner dims differ: ", shape_str(a.shape()), (trans_a ? "^T" : ""), " · ",
                shape_str(b.shape()), (trans_b ? "^T" : ""), " (", ka, " vs ", kb, ")");
  const Shape a_batch(a.shape().begin(), a.shape().end() - 2), b_batch(b.shape().begin(), b.shape().end() - 2);
  const Shape batch_shape = broadcast_shapes(a_batch, b_batch, "matmul (batch dims)");

  // [..., M, K]·[K, N]: fold A's batch into its rows, one large GEMM instead of many small ones
  // (and dB then comes out as one GEMM too, with no batch sum).
  if (b.dim() == 2 && a.dim() > 2 && !trans_a) {
    Shape out_shape = a.shape();
    out_shape.back() = n;
    const int64_t rows = shape_numel(Shape(a.shape().begin(), a.shape().end() - 1));
    return reshape(matmul(reshape(a, {rows, ka}), b, false, trans_b), out_shape);
  }

  Tensor ad = a.detach(), bd = b.detach();
  Tensor out = detail::matmul_forward(ad, bd, trans_a, trans_b, batch_shape, m, n, ka);
  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  const Shape a_shape = a.shape(), b_shape = b.shape();
  return record(out, "matmul", {a, b}, [=](const Tensor& g) {
    Tensor ga, gb;
    if (need_a) {
      ga = trans_a ? matmul(bd, g, trans_b, true) : matmul(g, bd, false, !trans_b);
      if (ga.shape() != a_shape) ga = sum_to(ga, a_shape);
    }
    if (need_b) {
      gb = trans_b ? matmul(g, ad, true, trans_a) : matmul(ad, g, !trans_a, false);
      if (gb.shape() != b_shape) gb = sum_to(gb, b_shape);
    }
    return std::vector<Tensor>{ga, gb};
  });
}

}  // namespace sparrow
