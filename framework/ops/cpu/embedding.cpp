// Forward copies rows in parallel (rows are independent). Backward parallelises over column
// blocks of D instead of over ids, so repeated ids never race: each thread owns its columns of
// every row. bf16 accumulates in f32 and rounds once.
#include "framework/ops/cpu/embedding.h"

#include <omp.h>

#include <cstring>
#include <vector>

namespace sparrow::cpu {

namespace {

template <class Acc, class T>
void scatter_add(const T* g, const int32_t* ids, int64_t n, int64_t d, Acc* acc) {
  const int64_t block = 64;
  const int64_t nblocks = (d + block - 1) / block;
#pragma omp parallel for schedule(static) if (n * d > (1 << 16))
  for (int64_t cb = 0; cb < nblocks; ++cb) {
    const int64_t c0 = cb * block, c1 = std::min(d, c0 + block);
    for (int64_t i = 0; i < n; ++i) {
      Acc* row = acc + static_cast<int64_t>(ids[i]) * d;
      const T* src = g + i * d;
      for (int64_t c = c0; c < c1; ++c) row[c] += static_cast<Acc>(src[c]);
    }
  }
}

}  // namespace

void embedding_check_ids(const Tensor& ids, int64_t v, std::function<std::string(int64_t, int64_t)> message) {
  const int32_t* id = ids.data<int32_t>();
  for (int64_t i = 0, n = ids.numel(); i < n; ++i)
    if (id[i] < 0 || id[i] >= v) throw Error(message(i, id[i]));
}

void embedding_forward(const Tensor& weight, const Tensor& ids, Tensor& out) {
  const int64_t n = ids.numel(), d = weight.size(1);
  const size_t row_bytes = static_cast<size_t>(d) * dtype_size(weight.dtype());
  const char* w = static_cast<const char*>(weight.data_ptr());
  char* o = static_cast<char*>(out.data_ptr());
  const int32_t* id = ids.data<int32_t>();
#pragma omp parallel for schedule(static) if (n * d > (1 << 16))
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(o + i * row_bytes, w + static_cast<int64_t>(id[i]) * row_bytes, row_bytes);
}

void embedding_backward(const Tensor& grad_out, const Tensor& ids, Tensor& grad_weight) {
  const int64_t n = ids.numel(), v = grad_weight.size(0), d = grad_weight.size(1);
  const int32_t* id = ids.data<int32_t>();
  switch (grad_weight.dtype()) {
    case DType::F32:
      return scatter_add(grad_out.data<float>(), id, n, d, grad_weight.data<float>());
    case DType::F64:
      return scatter_add(grad_out.data<double>(), id, n, d, grad_weight.data<double>());
    case DType::BF16: {
      std::vector<float> acc(static_cast<size_t>(v * d), 0.0f);
      scatter_add(grad_out.data<bf16>(), id, n, d, acc.data());
      bf16* gw = grad_weight.data<bf16>();
      for (int64_t i = 0; i < v * d; ++i) gw[i] = bf16(acc[i]);
      return;
    }
    default:
      fail("embedding backward (cpu): unsupported dtype ", dtype_name(grad_weight.dtype()));
  }
}

}  // namespace sparrow::cpu
