// Walks a shape in row-major order while keeping the element offsets of several strided
// operands in step (an odometer: the last index moves fastest; on carry, each offset steps back
// by (size-1)·stride and forward by the next dim's stride). Broadcast operands use stride 0.
#pragma once
#include <array>
#include <cstdint>
#include <utility>

#include "framework/core/shape.h"

namespace sparrow {

template <int K>
class StridedWalk {
 public:
  // strides[k] are operand k's strides for `shape` (same rank); offsets start at base[k].
  StridedWalk(const Shape& shape, const std::array<const Shape*, K>& strides, const std::array<int64_t, K>& base)
      : shape_(shape), idx_(shape.size(), 0), strides_(strides), off_(base) {}

  const std::array<int64_t, K>& offsets() const { return off_; }

  // Advance by one element.
  void next() {
    for (size_t d = shape_.size(); d-- > 0;) {
      for (int k = 0; k < K; ++k) off_[k] += (*strides_[k])[d];
      if (++idx_[d] < shape_[d]) return;
      for (int k = 0; k < K; ++k) off_[k] -= (*strides_[k])[d] * shape_[d];
      idx_[d] = 0;
    }
  }

 private:
  const Shape& shape_;
  Shape idx_;
  std::array<const Shape*, K> strides_;
  std::array<int64_t, K> off_;
};

// Drops size-1 dims and merges dim d into the previous kept dim wherever every operand walks
// that pair like one dim (stride[prev] == stride[d]·shape[d]). A contiguous operand set
// collapses to one dim; [B, N, D] + [D] collapses to [B·N, D]. Loops over fewer, longer dims
// are cheaper to index on both CPU and GPU.
template <int K>
void coalesce(Shape& shape, std::array<Shape, K>& strides) {
  Shape s;
  std::array<Shape, K> t;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !s.empty();
    for (int k = 0; k < K && merge; ++k) merge = t[k].back() == strides[k][d] * shape[d];
    if (merge) {
      s.back() *= shape[d];
      for (int k = 0; k < K; ++k) t[k].back() = strides[k][d];
    } else {
      s.push_back(shape[d]);
      for (int k = 0; k < K; ++k) t[k].push_back(strides[k][d]);
    }
  }
  shape = std::move(s);
  strides = std::move(t);
}

// Strides of a tensor of shape `from` (with strides `st`) broadcast to shape `to`: size-1 or
// missing leading dims get stride 0.
inline Shape broadcast_strides(const Shape& from, const Shape& st, const Shape& to) {
  Shape out(to.size(), 0);
  size_t lead = to.size() - from.size();
  for (size_t i = 0; i < from.size(); ++i) out[lead + i] = from[i] == 1 ? 0 : st[i];
  return out;
}

}  // namespace sparrow
