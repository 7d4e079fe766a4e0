#include "framework/ops/cpu/reduce.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "framework/ops/cpu/elementwise.h"

namespace sparrow::cpu {

namespace {

using loop::load;
using loop::store;

// Offset of row-major index i in an index space (shape, strides).
int64_t offset_of(int64_t i, const Shape& shape, const Shape& strides) {
  int64_t off = 0;
  for (size_t d = shape.size(); d-- > 0;) {
    off += (i % shape[d]) * strides[d];
    i /= shape[d];
  }
  return off;
}

// Steps through the offsets of an index space in row-major order from a given start.
class OffsetWalk {
 public:
  OffsetWalk(const Shape& shape, const Shape& strides, int64_t start) : shape_(shape), strides_(strides) {
    idx_.resize(shape.size());
    for (size_t d = shape.size(); d-- > 0;) {
      idx_[d] = start % shape[d];
      start /= shape[d];
      off_ += idx_[d] * strides[d];
    }
  }
  int64_t offset() const { return off_; }
  void next() {
    for (size_t d = shape_.size(); d-- > 0;) {
      off_ += strides_[d];
      if (++idx_[d] < shape_[d]) return;
      off_ -= strides_[d] * shape_[d];
      idx_[d] = 0;
    }
  }

 private:
  const Shape& shape_;
  const Shape& strides_;
  Shape idx_;
  int64_t off_ = 0;
};

// Σ p[red(r)] for r in [r0, r1).
template <class T>
double sum_range(const T* p, const Shape& red_shape, const Shape& red_strides, int64_t r0, int64_t r1) {
  double s = 0;
  if (red_shape.size() == 1) {
    const int64_t st = red_strides[0];
    if (st == 1) {
      for (int64_t r = r0; r < r1; ++r) s += load(p[r]);
    } else {
      for (int64_t r = r0; r < r1; ++r) s += load(p[r * st]);
    }
    return s;
  }
  OffsetWalk w(red_shape, red_strides, r0);
  for (int64_t r = r0; r < r1; ++r, w.next()) s += load(p[w.offset()]);
  return s;
}

// Kept dims innermost and contiguous (e.g. [M, N] → [N], the bias gradient): each reduced
// index r adds a contiguous row into a column block of accumulators, so memory is read in order.
template <class T>
void sum_columns(const T* p, int64_t O, const Shape& red_shape, const Shape& red_strides, double scale, T* out) {
  const int64_t R = shape_numel(red_shape);
  constexpr int64_t kBlock = 512;
  const int64_t blocks = (O + kBlock - 1) / kBlock;
  const int threads = omp_get_max_threads();
  // Split the reduced range too when there are fewer column blocks than threads.
  const int64_t splits = blocks >= threads ? 1 : std::max<int64_t>(1, std::min<int64_t>(threads, R / 64));
  std::vector<double> partial(static_cast<size_t>(splits * O), 0.0);
  const bool parallel = O * R >= loop::kParallelMin;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t task = 0; task < blocks * splits; ++task) {
    const int64_t b = task / splits, sp = task % splits;
    const int64_t j0 = b * kBlock, nj = std::min(kBlock, O - j0);
    const int64_t r0 = R * sp / splits, r1 = R * (sp + 1) / splits;
    double* acc = partial.data() + sp * O + j0;
    OffsetWalk w(red_shape, red_strides, r0);
    for (int64_t r = r0; r < r1; ++r, w.next()) {
      const T* row = p + w.offset() + j0;
      for (int64_t j = 0; j < nj; ++j) acc[j] += load(row[j]);
    }
  }
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t j = 0; j < O; ++j) {
    double s = 0;
    for (int64_t sp = 0; sp < splits; ++sp) s += partial[sp * O + j];
    out[j] = store<T>(static_cast<typename loop::Compute<T>::type>(s * scale));
  }
}

// The general case: one sum per output, the reduced range split across threads when there are
// few outputs (sum of everything) so that all cores work.
template <class T>
void sum_rows(const T* p, const Shape& kept_shape, const Shape& kept_strides, const Shape& red_shape,
              const Shape& red_strides, double scale, T* out) {
  const int64_t O = shape_numel(kept_shape), R = shape_numel(red_shape);
  const int threads = omp_get_max_threads();
  const int64_t splits =
      (O < 2 * threads && R >= 2 * loop::kChunk) ? std::min<int64_t>(4 * threads, R / loop::kChunk) : 1;
  std::vector<double> partial(static_cast<size_t>(O * splits));
#pragma omp parallel for schedule(static) if (O * R >= loop::kParallelMin && O * splits > 1)
  for (int64_t task = 0; task < O * splits; ++task) {
    const int64_t o = task / splits, sp = task % splits;
    partial[task] = sum_range(p + offset_of(o, kept_shape, kept_strides), red_shape, red_strides, R * sp / splits,
                              R * (sp + 1) / splits);
  }
  for (int64_t o = 0; o < O; ++o) {
    double s = 0;
    for (int64_t sp = 0; sp < splits; ++sp) s += partial[o * splits + sp];
    out[o] = store<T>(static_cast<typename loop::Compute<T>::type>(s * scale));
  }
}

}  // namespace

void sum(const Tensor& a, const Shape& kept_shape, const Shape& kept_strides, const Shape& red_shape,
         const Shape& red_strides, double scale, Tensor& out) {
  loop::dispatch_float(a.dtype(), "sum", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = loop::base_ptr<T>(a) + a.offset();
    T* o = out.data<T>();
    const int64_t O = shape_numel(kept_shape), R = shape_numel(red_shape);
    if (O == 0) return;
    if (R == 0) {  // an empty sum is 0
      for (int64_t i = 0; i < O; ++i) o[i] = store<T>(typename loop::Compute<T>::type(0));
      return;
    }
    if (kept_shape.size() == 1 && kept_strides[0] == 1 && O >= 16 && R > 1)
      sum_columns(p, O, red_shape, red_strides, scale, o);
    else
      sum_rows(p, kept_shape, kept_strides, red_shape, red_strides, scale, o);
  });
}

void max(const Tensor& a, const Shape& kept_shape, const Shape& kept_strides, int64_t n, int64_t stride, Tensor& out,
         Tensor& idx) {
  loop::dispatch_float(a.dtype(), "max", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = loop::base_ptr<T>(a) + a.offset();
    T* o = out.data<T>();
    int32_t* ix = idx.data<int32_t>();
    const int64_t O = shape_numel(kept_shape);
#pragma omp parallel for schedule(static) if (O * n >= loop::kParallelMin)
    for (int64_t k = 0; k < O; ++k) {
      const T* q = p + offset_of(k, kept_shape, kept_strides);
      auto best = load(q[0]);
      int64_t bi = 0;
      for (int64_t i = 1; i < n && !std::isnan(best); ++i) {
        const auto v = load(q[i * stride]);
        if (v > best || std::isnan(v)) {
          best = v;
          bi = i;
        }
      }
      o[k] = store<T>(best);
      ix[k] = static_cast<int32_t>(bi);
    }
  });
}

void max_backward(const Tensor& g, const Tensor& idx, int64_t outer, int64_t n, int64_t inner, Tensor& grad_in) {
  loop::dispatch_float(g.dtype(), "max backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pg = g.data<T>();
    const int32_t* ix = idx.data<int32_t>();
    T* gi = grad_in.data<T>();
#pragma omp parallel for schedule(static) if (outer * inner >= loop::kParallelMin)
    for (int64_t k = 0; k < outer * inner; ++k) {
      const int64_t o = k / inner, i = k % inner;
      gi[(o * n + ix[k]) * inner + i] = pg[k];
    }
  });
}

}  // namespace sparrow::cpu
