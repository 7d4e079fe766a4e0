// Eigen maps the operands in place (row-major, with their leading dimension as the outer stride),
// so a transposed operand is a transposed map, never a copy. Threads: a large batch is split
// across OpenMP threads (each GEMM then runs single-threaded: Eigen does not nest inside a
// parallel region); a small batch runs its GEMMs one after another, each threaded by Eigen (which
// uses OpenMP's threads when built with -fopenmp). A batch too small to repay waking a thread
// team runs on one thread.
#include "framework/ops/cpu/matmul.h"

#include <omp.h>

#include <Eigen/Core>

#include "framework/ops/cpu/elementwise.h"
#include "framework/ops/ops.h"

namespace sparrow::cpu {

namespace {

template <class T>
void gemm_batched(const GemmProblem& p, T* c) {
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using In = Eigen::Map<const Mat, Eigen::Unaligned, Eigen::OuterStride<>>;
  using Out = Eigen::Map<Mat>;
  const T* abase = static_cast<const T*>(p.a.t.impl().storage->data);
  const T* bbase = static_cast<const T*>(p.b.t.impl().storage->data);
  const bool ta = p.a.trans, tb = p.b.trans;
  auto one = [&](int64_t i) {
    In a(abase + p.a.offsets[i], p.a.rows, p.a.cols, Eigen::OuterStride<>(p.a.ld));
    In b(bbase + p.b.offsets[i], p.b.rows, p.b.cols, Eigen::OuterStride<>(p.b.ld));
    Out out(c + i * p.m * p.n, p.m, p.n);
    if (!ta && !tb)
      out.noalias() = a * b;
    else if (ta && !tb)
      out.noalias() = a.transpose() * b;
    else if (!ta && tb)
      out.noalias() = a * b.transpose();
    else
      out.noalias() = a.transpose() * b.transpose();
  };
  // Tiny problems stay on one thread: waking a team costs more than the multiply.
  const int threads = omp_get_max_threads();
  const double flops = 2.0 * static_cast<double>(p.batch) * p.m * p.n * p.k;
  if (threads > 1 && p.batch >= threads && flops > 1e6) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < p.batch; ++i) one(i);
  } else {
    for (int64_t i = 0; i < p.batch; ++i) one(i);
  }
}

}  // namespace

bool matmul(const GemmProblem& p, Tensor& out) {
  SPARROW_CHECK(out.is_contiguous(), "matmul (cpu): output must be contiguous");
  switch (out.dtype()) {
    case DType::F32:
      gemm_batched<float>(p, out.data<float>());
      break;
    case DType::F64:
      gemm_batched<double>(p, out.data<double>());
      break;
    default:
      fail("matmul (cpu): unsupported dtype ", dtype_name(out.dtype()), " (f32 and f64; bf16 via f32)");
  }
  // What the CPU applies after the product, as second passes: the bias added to every row, the residual.
  if (p.epilogue == GemmEpilogue::Bias) add(out, reshape(p.bias, {1, p.n}), out);
  if (p.residual.defined()) add(out, reshape(p.residual, out.shape()), out);
  return p.epilogue == GemmEpilogue::None || p.epilogue == GemmEpilogue::Bias;
}

}  // namespace sparrow::cpu
