// Shape and view ops. Views (reshape of a contiguous tensor, transpose, permute, slice) share the
// input's storage through make_view; concat and the copying branches of reshape/contiguous
// produce fresh contiguous tensors. Each backward is built from these same ops, so it runs on
// whichever device the gradient lives on.
#include <algorithm>
#include <numeric>
#include "framework/core/profile.h"

#include "framework/autograd/node.h"
#include "framework/ops/ops.h"

namespace sparrow {

namespace {

// Resolves one -1 in `want` from numel and checks the element counts agree.
Shape resolve_shape(const Tensor& a, const Shape& want) {
  Shape s = want;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      SPARROW_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(want));
      infer = static_cast<int64_t>(i);
    } else {
      SPARROW_CHECK(s[i] >= 0, "reshape: negative size in ", shape_str(want));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    SPARROW_CHECK(known != 0 && a.numel() % known == 0, "reshape: cannot infer -1 in ", shape_str(want),
                  " for a tensor of shape ", shape_str(a.shape()));
    s[infer] = a.numel() / known;
  }
  SPARROW_CHECK(shape_numel(s) == a.numel(), "reshape: ", shape_str(a.shape()), " (", a.numel(),
                " elements) cannot become ", shape_str(want));
  return s;
}

// Gradient of a slice: the incoming gradient placed into zeros of the input's shape.
Tensor scatter_slice(const Tensor& g, const Shape& in_shape, int64_t dim, int64_t start) {
  Tensor full_grad = zeros(in_shape, g.dtype(), g.device());
  Shape st = full_grad.strides();
  Tensor window = make_view(full_grad, g.shape(), st, start * st[dim]);
  copy_(window, g);
  return full_grad;
}

}  // namespace

Tensor contiguous(const Tensor& a) {
  SPARROW_PROFILE_OP("contiguous");
  if (a.is_contiguous()) return a;
  Tensor out = empty(a.shape(), a.dtype(), a.device());
  copy_(out, a);
  return record(out, "contiguous", {a}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor reshape(const Tensor& a, const Shape& shape) {
  Shape s = resolve_shape(a, shape);
  if (s == a.shape()) return a;
  // A non-contiguous input is copied first (recorded, so its gradient flows back through it).
  Tensor c = a.is_contiguous() ? a : contiguous(a);
  Tensor out = make_view(c, s, contiguous_strides(s), c.offset());
  Shape in_shape = a.shape();
  return record(out, "reshape", {c}, [in_shape](const Tensor& g) { return std::vector<Tensor>{reshape(g, in_shape)}; });
}

Tensor transpose(const Tensor& a, int64_t d0, int64_t d1) {
  const int64_t n = a.dim();
  SPARROW_CHECK(n >= 1, "transpose: needs at least one dim, got ", describe(a));
  d0 = normalize_dim(d0, n, "transpose");
  d1 = normalize_dim(d1, n, "transpose");
  if (d0 == d1) return a;
  Shape sh = a.shape(), st = a.strides();
  std::swap(sh[d0], sh[d1]);
  std::swap(st[d0], st[d1]);
  Tensor out = make_view(a, sh, st, a.offset());
  return record(out, "transpose", {a}, [d0, d1](const Tensor& g) { return std::vector<Tensor>{transpose(g, d0, d1)}; });
}

Tensor permute(const Tensor& a, const std::vector<int64_t>& order) {
  const int64_t n = a.dim();
  SPARROW_CHECK(static_cast<int64_t>(order.size()) == n, "permute: order of ", order.size(), " dims for ", describe(a));
  std::vector<int64_t> ord(n), inverse(n, -1);
  for (int64_t i = 0; i < n; ++i) {
    ord[i] = normalize_dim(order[i], n, "permute");
    SPARROW_CHECK(inverse[ord[i]] < 0, "permute: dim ", order[i], " repeats in the order for ", describe(a));
    inverse[ord[i]] = i;
  }
  Shape sh(n), st(n);
  for (int64_t i = 0; i < n; ++i) {
    sh[i] = a.shape()[ord[i]];
    st[i] = a.strides()[ord[i]];
  }
  Tensor out = make_view(a, sh, st, a.offset());
  return record(out, "permute", {a}, [inverse](const Tensor& g) { return std::vector<Tensor>{permute(g, inverse)}; });
}

Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end) {
  SPARROW_CHECK(a.dim() >= 1, "slice: needs at least one dim, got ", describe(a));
  const int64_t d = normalize_dim(dim, a.dim(), "slice");
  const int64_t size = a.shape()[d];
  // Negative bounds count from the end (Python style); out-of-range bounds are an error, not clamped.
  const int64_t s = start < 0 ? start + size : start;
  const int64_t e = end < 0 ? end + size : end;
  SPARROW_CHECK(0 <= s && s <= e && e <= size, "slice: [", start, ", ", end, ") out of range for dim ", dim,
                " of size ", size, " in ", describe(a));
  if (s == 0 && e == size) return a;
  Shape sh = a.shape();
  sh[d] = e - s;
  Tensor out = make_view(a, sh, a.strides(), a.offset() + s * a.strides()[d]);
  Shape in_shape = a.shape();
  if (!needs_grad({&a})) return out;
  return record(out,
                std::make_shared<WindowNode>("slice", GradWindow{in_shape, d, s},
                                             [in_shape, d, s](const Tensor& g) {
                                               return std::vector<Tensor>{scatter_slice(g, in_shape, d, s)};
                                             }),
                {a});
}

Tensor concat(const std::vector<Tensor>& parts, int64_t dim) {
  SPARROW_PROFILE_OP("concat");
  SPARROW_CHECK(!parts.empty(), "concat: no tensors given");
  const Tensor& first = parts[0];
  SPARROW_CHECK(first.dim() >= 1, "concat: needs tensors of at least one dim, got ", describe(first));
  const int64_t d = normalize_dim(dim, first.dim(), "concat");
  Shape out_shape = first.shape();
  out_shape[d] = 0;
  for (const Tensor& p : parts) {
    check_same_device("concat", first, p);
    check_same_dtype("concat", first, p);
    bool ok = p.dim() == first.dim();
    for (int64_t i = 0; ok && i < first.dim(); ++i) ok = i == d || p.shape()[i] == first.shape()[i];
    SPARROW_CHECK(ok, "concat: along dim ", dim, " shapes ", shape_str(first.shape()), " and ", shape_str(p.shape()),
                  " differ outside that dim");
    out_shape[d] += p.shape()[d];
  }
  Tensor out = empty(out_shape, first.dtype(), first.device());
  const Shape st = out.strides();
  std::vector<int64_t> starts;
  int64_t at = 0;
  for (const Tensor& p : parts) {
    starts.push_back(at);
    Tensor window = make_view(out, p.shape(), st, at * st[d]);
    copy_(window, p);
    at += p.shape()[d];
  }
  std::vector<int64_t> sizes;
  for (const Tensor& p : parts) sizes.push_back(p.shape()[d]);
  return record(out, "concat", parts, [d, starts, sizes](const Tensor& g) {
    std::vector<Tensor> grads;
    for (size_t i = 0; i < sizes.size(); ++i) grads.push_back(slice(g, d, starts[i], starts[i] + sizes[i]));
    return grads;
  });
}

// Each part is a slice view recorded on its own, so parts used later in different places get
// their gradients summed back by the engine.
std::vector<Tensor> split(const Tensor& a, const std::vector<int64_t>& sizes, int64_t dim) {
  SPARROW_PROFILE_OP("split");
  SPARROW_CHECK(a.dim() >= 1, "split: needs at least one dim, got ", describe(a));
  const int64_t d = normalize_dim(dim, a.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    SPARROW_CHECK(s >= 0, "split: negative size ", s);
    total += s;
  }
  SPARROW_CHECK(total == a.shape()[d], "split: sizes sum to ", total, " but dim ", dim, " of ", describe(a), " has ",
                a.shape()[d]);
  std::vector<Tensor> parts;
  int64_t at = 0;
  for (int64_t s : sizes) {
    parts.push_back(slice(a, d, at, at + s));
    at += s;
  }
  return parts;
}

std::vector<Tensor> empty_adjacent(const std::vector<Tensor>& likes) {
  std::vector<Tensor> out;
  // One buffer only for likes that are themselves back to back in one (slices of one tensor):
  // separate tensors' gradients are better separate too, each then adopted by its leaf without a
  // copy (a view into a shared buffer would be cloned: 3 × 128 MiB a backward at 64K × 16 heads × D 64).
  bool same = !likes.empty();
  for (size_t i = 0; same && i < likes.size(); ++i) {
    const Tensor& t = likes[i];
    same = t.shape() == likes[0].shape() && t.dtype() == likes[0].dtype() && t.device() == likes[0].device() &&
           t.is_contiguous() && t.impl().storage == likes[0].impl().storage &&
           t.offset() == likes[0].offset() + static_cast<int64_t>(i) * likes[0].numel();
  }
  if (!same) {
    for (const Tensor& t : likes) out.push_back(empty(t.shape(), t.dtype(), t.device()));
    return out;
  }
  const Tensor& first = likes[0];
  Shape all = first.shape();
  all.insert(all.begin(), static_cast<int64_t>(likes.size()));
  Tensor buffer = empty(all, first.dtype(), first.device());
  const Shape st = contiguous_strides(first.shape());
  for (size_t i = 0; i < likes.size(); ++i)
    out.push_back(make_view(buffer, first.shape(), st, static_cast<int64_t>(i) * first.numel()));
  return out;
}

}  // namespace sparrow
