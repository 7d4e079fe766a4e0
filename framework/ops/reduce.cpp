// Front ends of the reductions: dim lists, the split of the input into kept and reduced index
// spaces (what the kernels walk), keepdim, autograd. The gradient of a sum is the output
// gradient broadcast back over the reduced dims; of a max, the gradient scattered to the first
// maximal element.
#include <algorithm>
#include <array>
#include <limits>
#include "framework/core/profile.h"

#include "framework/autograd/node.h"
#include "framework/core/dispatch.h"
#include "framework/core/strided.h"
#include "framework/ops/cpu/reduce.h"
#include "framework/ops/cuda/reduce.h"
#include "framework/ops/ops.h"

namespace sparrow {

namespace {

// One operand: the shared rule of framework/core/strided.h.
void coalesce(Shape& shape, Shape& strides) {
  std::array<Shape, 1> st{std::move(strides)};
  sparrow::coalesce<1>(shape, st);
  strides = std::move(st[0]);
}

// reduced[d] for each dim of a (an empty list means every dim); duplicates are an error.
std::vector<bool> reduced_dims(const char* op, const Tensor& a, const std::vector<int64_t>& dims) {
  std::vector<bool> r(a.shape().size(), dims.empty());
  for (int64_t d : dims) {
    int64_t n = normalize_dim(d, a.dim(), op);
    SPARROW_CHECK(a.dim() > 0, op, ": dim ", d, " of a 0-d tensor");
    SPARROW_CHECK(!r[n], op, ": dim ", d, " listed twice for ", describe(a));
    r[n] = true;
  }
  return r;
}

Shape output_shape(const Shape& in, const std::vector<bool>& reduced, bool keepdim) {
  Shape out;
  for (size_t d = 0; d < in.size(); ++d)
    if (!reduced[d] || keepdim) out.push_back(reduced[d] ? 1 : in[d]);
  return out;
}

// A copy of g (shaped like the reduction's output) broadcast over the reduced dims of `in`.
Tensor expand_reduced(const Tensor& g, const Shape& in, const std::vector<bool>& reduced, bool keepdim) {
  Shape st(in.size(), 0);
  for (size_t d = 0, k = 0; d < in.size(); ++d) {
    if (!reduced[d]) st[d] = g.strides()[k];
    if (!reduced[d] || keepdim) ++k;
  }
  Tensor out = empty(in, g.dtype(), g.device());
  copy_(out, make_view(g, in, st, g.offset()));
  return out;
}

Tensor sum_impl(const char* op, const Tensor& a, const std::vector<int64_t>& dims, bool keepdim, bool average) {
  check_float(op, a);
  const std::vector<bool> red = reduced_dims(op, a, dims);
  Shape ks, kst, rs, rst;
  int64_t count = 1;
  for (size_t d = 0; d < red.size(); ++d) {
    (red[d] ? rs : ks).push_back(a.shape()[d]);
    (red[d] ? rst : kst).push_back(a.strides()[d]);
    if (red[d]) count *= a.shape()[d];
  }
  coalesce(ks, kst);
  coalesce(rs, rst);
  const double scale = average ? 1.0 / static_cast<double>(count) : 1.0;
  Tensor out = empty(output_shape(a.shape(), red, keepdim), a.dtype(), a.device());
  SPARROW_DISPATCH(a.device(), sum, a, ks, kst, rs, rst, scale, out);
  return record(out, op, {a}, [red, keepdim, scale, in = a.shape()](const Tensor& g) {
    return std::vector<Tensor>{expand_reduced(scale == 1.0 ? g : mul_scalar(g, scale), in, red, keepdim)};
  });
}

// g laid out contiguously (the max-backward kernel indexes it flat).
Tensor dense(const Tensor& g) {
  if (g.is_contiguous()) return g;
  Tensor c = empty(g.shape(), g.dtype(), g.device());
  copy_(c, g);
  return c;
}

}  // namespace

Tensor sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  SPARROW_PROFILE_OP("sum");
  return sum_impl("sum", a, dims, keepdim, false);
}

Tensor mean(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  SPARROW_PROFILE_OP("mean");
  return sum_impl("mean", a, dims, keepdim, true);
}

Tensor max(const Tensor& a, int64_t dim, bool keepdim) {
  SPARROW_PROFILE_OP("max");
  check_float("max", a);
  SPARROW_CHECK(a.dim() > 0, "max: needs a tensor with at least one dim, got ", describe(a));
  const int64_t d = normalize_dim(dim, a.dim(), "max");
  const int64_t n = a.shape()[d];
  SPARROW_CHECK(n > 0, "max: dim ", dim, " of ", describe(a), " is empty");
  SPARROW_CHECK(n <= std::numeric_limits<int32_t>::max(), "max: dim ", dim, " of ", describe(a), " too long");
  std::vector<bool> red(a.shape().size(), false);
  red[d] = true;
  Shape ks, kst;
  for (int64_t i = 0; i < a.dim(); ++i)
    if (i != d) {
      ks.push_back(a.shape()[i]);
      kst.push_back(a.strides()[i]);
    }
  coalesce(ks, kst);
  Shape out_shape = output_shape(a.shape(), red, keepdim);
  Tensor out = empty(out_shape, a.dtype(), a.device());
  Tensor idx = empty(out_shape, DType::I32, a.device());
  SPARROW_DISPATCH(a.device(), max, a, ks, kst, n, a.strides()[d], out, idx);
  if (!needs_grad({&a})) return out;
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= a.shape()[i];
  for (int64_t i = d + 1; i < a.dim(); ++i) inner *= a.shape()[i];
  return record(out, "max", {a}, [idx, outer, n, inner, in = a.shape()](const Tensor& g) {
    Tensor gd = dense(g);
    SPARROW_CHECK(gd.dtype() != DType::I32 && gd.numel() == outer * inner, "max backward: gradient ", describe(g),
                  " for an input ", shape_str(in));
    Tensor gi = zeros(in, gd.dtype(), gd.device());
    SPARROW_DISPATCH(gi.device(), max_backward, gd, idx, outer, n, inner, gi);
    return std::vector<Tensor>{gi};
  });
}

Tensor sum_to(const Tensor& a, const Shape& shape) {
  SPARROW_PROFILE_OP("sum_to");
  SPARROW_CHECK(shape.size() <= a.shape().size() && broadcast_shapes(shape, a.shape(), "sum_to") == a.shape(),
                "sum_to: cannot sum ", describe(a), " to ", shape_str(shape));
  const size_t lead = a.shape().size() - shape.size();
  std::vector<int64_t> dims;
  for (size_t d = 0; d < a.shape().size(); ++d)
    if (d < lead || (shape[d - lead] == 1 && a.shape()[d] != 1)) dims.push_back(static_cast<int64_t>(d));
  if (dims.empty() && lead == 0) return a;
  Tensor out;
  {
    NoGradGuard no_grad;  // recorded below as one node
    Tensor s = sum(a, dims, true);
    out = make_view(s, shape, contiguous_strides(shape), s.offset());
  }
  return record(out, "sum_to", {a}, [in = a.shape(), shape](const Tensor& g) {
    Tensor gx = empty(in, g.dtype(), g.device());
    copy_(gx, make_view(g, in, broadcast_strides(shape, g.strides(), in), g.offset()));
    return std::vector<Tensor>{gx};
  });
}

}  // namespace sparrow
