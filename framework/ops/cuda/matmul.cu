// Row-major GEMM on cuBLASLt (column-major): a row-major X is the column-major Xᵀ, so
// C = op(A)·op(B) is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ with cuBLAS's first operand our B and its
// second our A, each with the transpose flag it already carries; C comes out row-major M×N.
//
// A batch runs as one strided-batched call when both operands' per-batch offsets step by a
// constant nonzero stride; otherwise (broadcast operands, irregular views) one call per batch
// element. Descriptors and the heuristic's algorithm are cached per shape/layout/alignment.
#include <cublas_v2.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "framework/cuda/runtime.h"
#include "framework/ops/cuda/elementwise.h"
#include "framework/ops/cuda/matmul.h"

namespace sparrow::cuda {

namespace {

struct Types {
  cudaDataType_t data;
  cublasComputeType_t compute;
  cudaDataType_t scale;
};

Types types_for(DType t) {
  switch (t) {
    case DType::BF16:
      return {CUDA_R_16BF, CUBLAS_COMPUTE_32F, CUDA_R_32F};
    case DType::F32:
      return {CUDA_R_32F, CUBLAS_COMPUTE_32F, CUDA_R_32F};  // pedantic fp32: no TF32
    case DType::F64:
      return {CUDA_R_64F, CUBLAS_COMPUTE_64F, CUDA_R_64F};
    default:
      fail("matmul (cuda): unsupported dtype ", dtype_name(t));
  }
}

// One GEMM call's geometry in cuBLAS (column-major) terms: first = our B, second = our A.
struct Call {
  DType dtype;
  bool trans_first, trans_second;
  int64_t rows_first, cols_first, ld_first;  // stored (column-major) shape of the first operand
  int64_t rows_second, cols_second, ld_second;
  int64_t m, n;                                 // Cᵀ is n×m column-major, ld n
  int64_t batch, stride_first, stride_second;   // batch count and element strides (batch > 1)
  uint32_t align_first, align_second, align_c;  // pointer alignments in bytes (≤ 256)
  int device;
  GemmEpilogue epilogue;

  auto tie() const {
    return std::tie(dtype, trans_first, trans_second, rows_first, cols_first, ld_first, rows_second, cols_second,
                    ld_second, m, n, batch, stride_first, stride_second, align_first, align_second, align_c, device,
                    epilogue);
  }
  bool operator<(const Call& o) const { return tie() < o.tie(); }
};

struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t first = nullptr, second = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool has_algo = false;
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (second) cublasLtMatrixLayoutDestroy(second);
    if (first) cublasLtMatrixLayoutDestroy(first);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

cublasLtMatrixLayout_t make_layout(cudaDataType_t t, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                                   int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  SPARROW_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, t, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
  if (batch > 1) {
    int32_t count = static_cast<int32_t>(batch);
    SPARROW_CUBLAS_CHECK(
        cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
    SPARROW_CUBLAS_CHECK(
        cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  }
  return l;
}

std::unique_ptr<Plan> build_plan(const Call& k) {
  auto p = std::make_unique<Plan>();
  const Types ty = types_for(k.dtype);
  SPARROW_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->op, ty.compute, ty.scale));
  cublasOperation_t ta = k.trans_first ? CUBLAS_OP_T : CUBLAS_OP_N, tb = k.trans_second ? CUBLAS_OP_T : CUBLAS_OP_N;
  SPARROW_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  SPARROW_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  if (k.epilogue != GemmEpilogue::None) {
    // Cᵀ is column-major n×m: a bias of length n (our N) added down each column is our bias added
    // to each row of C. aux has Cᵀ's layout.
    const cublasLtEpilogue_t epi = k.epilogue == GemmEpilogue::Bias          ? CUBLASLT_EPILOGUE_BIAS
                                   : k.epilogue == GemmEpilogue::GeluAuxBias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS
                                                                             : CUBLASLT_EPILOGUE_DGELU;
    SPARROW_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    const cudaDataType_t vec_type = ty.data;
    if (k.epilogue != GemmEpilogue::DGelu)
      SPARROW_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &vec_type, sizeof(vec_type)));
    if (k.epilogue != GemmEpilogue::Bias) {
      const int64_t aux_ld = k.n;
      SPARROW_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof(aux_ld)));
      SPARROW_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &vec_type,
                                                          sizeof(vec_type)));
    }
  }
  p->first = make_layout(ty.data, k.rows_first, k.cols_first, k.ld_first, k.batch, k.stride_first);
  p->second = make_layout(ty.data, k.rows_second, k.cols_second, k.ld_second, k.batch, k.stride_second);
  p->c = make_layout(ty.data, k.n, k.m, k.n, k.batch, k.m * k.n);

  cublasLtMatmulPreference_t pref = nullptr;
  SPARROW_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  size_t ws_bytes = 0;
  cublaslt_workspace(&ws_bytes);
  uint64_t ws = ws_bytes;
  SPARROW_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  // cuBLASLt assumes 256-byte-aligned pointers unless told otherwise; views at odd offsets are not.
  SPARROW_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                            &k.align_first, sizeof(uint32_t)));
  SPARROW_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                            &k.align_second, sizeof(uint32_t)));
  SPARROW_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                            &k.align_c, sizeof(uint32_t)));
  SPARROW_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                            &k.align_c, sizeof(uint32_t)));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t s =
      cublasLtMatmulAlgoGetHeuristic(cublaslt(), p->op, p->first, p->second, p->c, p->c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (s == CUBLAS_STATUS_SUCCESS && found > 0) {
    p->algo = result.algo;
    p->has_algo = true;
  }
  return p;
}

// The plan for a call, built on first use. The map is bounded: past the cap it starts over.
const Plan& plan_for(const Call& k) {
  static std::mutex mu;
  static std::map<Call, std::unique_ptr<Plan>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(k);
  if (it != cache.end()) return *it->second;
  if (cache.size() >= 1024) cache.clear();
  return *cache.emplace(k, build_plan(k)).first->second;
}

// Classic cuBLAS, for the rare layout the cuBLASLt heuristic has no algorithm for.
cublasHandle_t cublas_handle() {
  static std::mutex mu;
  static std::map<int, cublasHandle_t> handles;
  std::lock_guard<std::mutex> lock(mu);
  int dev = current_device();
  auto it = handles.find(dev);
  if (it == handles.end()) {
    cublasHandle_t h = nullptr;
    SPARROW_CUBLAS_CHECK(cublasCreate(&h));
    it = handles.emplace(dev, h).first;
  }
  SPARROW_CUBLAS_CHECK(cublasSetStream(it->second, stream()));
  return it->second;
}

uint32_t alignment_of(const void* p, int64_t stride_bytes) {
  uint64_t bits = reinterpret_cast<uintptr_t>(p) | 256u;
  if (stride_bytes) bits |= static_cast<uint64_t>(stride_bytes);
  return static_cast<uint32_t>(bits & (~bits + 1));  // lowest set bit
}

// Constant step of an operand's batch offsets, or -1 when they are irregular or repeat.
int64_t uniform_stride(const std::vector<int64_t>& off) {
  if (off.size() < 2) return 0;
  const int64_t s = off[1] - off[0];
  if (s <= 0) return -1;
  for (size_t i = 2; i < off.size(); ++i)
    if (off[i] - off[i - 1] != s) return -1;
  return s;
}

// Returns false when an epilogue was asked for but no algorithm exists with it (the plain product
// is then in C).
// c_in: the residual (C with β = 1; D is c_base), or null (β = 0, C = D).
bool run(const GemmProblem& p, DType dtype, const char* a_base, const char* b_base, char* c_base, const char* c_in,
         int64_t batch, int64_t stride_a, int64_t stride_b, GemmEpilogue epilogue, void* bias, void* aux) {
  const int64_t es = static_cast<int64_t>(dtype_size(dtype));
  Call k{};
  k.dtype = dtype;
  k.trans_first = p.b.trans;
  k.trans_second = p.a.trans;
  k.rows_first = p.b.cols;
  k.cols_first = p.b.rows;
  k.ld_first = p.b.ld;
  k.rows_second = p.a.cols;
  k.cols_second = p.a.rows;
  k.ld_second = p.a.ld;
  k.m = p.m;
  k.n = p.n;
  k.batch = batch;
  k.stride_first = batch > 1 ? stride_b : 0;
  k.stride_second = batch > 1 ? stride_a : 0;
  k.align_first = alignment_of(b_base, k.stride_first * es);
  k.align_second = alignment_of(a_base, k.stride_second * es);
  k.align_c = alignment_of(c_base, batch > 1 ? p.m * p.n * es : 0);
  if (c_in) k.align_c = std::min(k.align_c, alignment_of(c_in, 0));  // one alignment preference for C and D
  k.device = current_device();
  k.epilogue = epilogue;
  const Plan& plan = plan_for(k);

  const float alpha_f = 1.0f, beta_f = c_in ? 1.0f : 0.0f;
  const double alpha_d = 1.0, beta_d = c_in ? 1.0 : 0.0;
  const void* alpha = dtype == DType::F64 ? static_cast<const void*>(&alpha_d) : &alpha_f;
  const void* beta = dtype == DType::F64 ? static_cast<const void*>(&beta_d) : &beta_f;
  if (plan.has_algo) {
    size_t ws_bytes = 0;
    void* ws = cublaslt_workspace(&ws_bytes);
    // Pointers are per call; the cached descriptor is only used from the one issuing thread.
    if (bias)
      SPARROW_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    if (aux)
      SPARROW_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux)));
    SPARROW_CUBLAS_CHECK(cublasLtMatmul(cublaslt(), plan.op, alpha, b_base, plan.first, a_base, plan.second, beta,
                                        c_in ? c_in : c_base, plan.c, c_base, plan.c, &plan.algo, ws, ws_bytes,
                                        stream()));
    return true;
  }
  if (epilogue != GemmEpilogue::None) {
    run(p, dtype, a_base, b_base, c_base, c_in, batch, stride_a, stride_b, GemmEpilogue::None, nullptr, nullptr);
    return false;
  }
  // Classic cuBLAS reads C where it writes: the residual is copied there first (batch 1).
  if (c_in)
    SPARROW_CUDA_CHECK(
        cudaMemcpyAsync(c_base, c_in, static_cast<size_t>(p.m * p.n * es), cudaMemcpyDeviceToDevice, stream()));
  const Types ty = types_for(dtype);
  SPARROW_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      cublas_handle(), k.trans_first ? CUBLAS_OP_T : CUBLAS_OP_N, k.trans_second ? CUBLAS_OP_T : CUBLAS_OP_N,
      static_cast<int>(p.n), static_cast<int>(p.m), static_cast<int>(p.k), alpha, b_base, ty.data,
      static_cast<int>(k.ld_first), k.stride_first, a_base, ty.data, static_cast<int>(k.ld_second), k.stride_second,
      beta, c_base, ty.data, static_cast<int>(p.n), p.m * p.n, static_cast<int>(batch), ty.compute,
      CUBLAS_GEMM_DEFAULT));
  return true;
}

}  // namespace

bool matmul(const GemmProblem& p, Tensor& out) {
  SPARROW_CHECK(out.is_contiguous(), "matmul (cuda): output must be contiguous");
  const DType dtype = out.dtype();
  const int64_t es = static_cast<int64_t>(dtype_size(dtype));
  const char* a_storage = static_cast<const char*>(p.a.t.impl().storage->data);
  const char* b_storage = static_cast<const char*>(p.b.t.impl().storage->data);
  char* c = static_cast<char*>(out.data_ptr());
  const int64_t sa = uniform_stride(p.a.offsets), sb = uniform_stride(p.b.offsets);
  void* bias = nullptr;
  void* aux = nullptr;
  if (p.epilogue != GemmEpilogue::None) {
    const bool needs_bias = p.epilogue != GemmEpilogue::DGelu;
    SPARROW_CHECK(p.batch == 1 && (!needs_bias || (p.bias.defined() && p.bias.is_contiguous() &&
                                                   p.bias.numel() == p.n && p.bias.dtype() == dtype)),
                  "matmul (cuda): an epilogue needs batch 1 and a contiguous [N] bias of the output dtype; got ",
                  describe(p.bias));
    if (needs_bias) bias = p.bias.data_ptr();
    if (p.epilogue != GemmEpilogue::Bias) {
      SPARROW_CHECK(p.aux.defined() && p.aux.is_contiguous() && p.aux.numel() == p.m * p.n && p.aux.dtype() == dtype,
                    "matmul (cuda): a GELU epilogue needs a contiguous [M, N] aux of the output dtype; got ",
                    describe(p.aux));
      aux = p.aux.data_ptr();
    }
  }
  const char* residual = nullptr;
  if (p.residual.defined()) {
    SPARROW_CHECK(p.batch == 1 && p.residual.is_contiguous() && p.residual.numel() == p.m * p.n &&
                      p.residual.dtype() == dtype &&
                      (p.epilogue == GemmEpilogue::None || p.epilogue == GemmEpilogue::Bias),
                  "matmul (cuda): a residual needs batch 1, no GELU epilogue and a contiguous [M, N] tensor of the "
                  "output dtype; got ",
                  describe(p.residual));
    residual = static_cast<const char*>(p.residual.data_ptr());
  }
  if (p.batch == 1 || (sa > 0 && sb > 0)) {
    if (run(p, dtype, a_storage + p.a.offsets[0] * es, b_storage + p.b.offsets[0] * es, c, residual, p.batch, sa, sb,
            p.epilogue, bias, aux))
      return true;
    if (p.epilogue != GemmEpilogue::Bias) return false;
    add(out, p.bias, out);  // no epilogue algorithm for this layout: a separate broadcast add
    return true;
  }
  for (int64_t i = 0; i < p.batch; ++i)
    run(p, dtype, a_storage + p.a.offsets[i] * es, b_storage + p.b.offsets[i] * es, c + i * p.m * p.n * es, nullptr, 1,
        0, 0, GemmEpilogue::None, nullptr, nullptr);
  return true;
}

}  // namespace sparrow::cuda
