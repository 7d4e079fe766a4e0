#include "framework/core/shape.h"

#include "framework/core/checked_math.h"
#include "framework/core/error.h"

namespace sparrow {

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    const std::optional<int64_t> m = checked_mul(n, d);
    SPARROW_CHECK(m, "shape ", shape_str(s), ": element count overflows 64 bits");
    n = *m;
  }
  return n;
}

int64_t shape_nbytes(const Shape& s, size_t elem_size) {
  const std::optional<int64_t> b = checked_mul(shape_numel(s), static_cast<int64_t>(elem_size));
  SPARROW_CHECK(b, "shape ", shape_str(s), ": byte size (", elem_size, "-byte elements) overflows 64 bits");
  return *b;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    SPARROW_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
                  " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

int64_t normalize_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t d = dim < 0 ? dim + ndim : dim;
  SPARROW_CHECK(d >= 0 && d < std::max<int64_t>(ndim, 1), op, ": dim ", dim, " out of range for a tensor of ", ndim,
                " dims");
  return d;
}

}  // namespace sparrow
