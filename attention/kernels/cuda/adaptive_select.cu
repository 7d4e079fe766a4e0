// Adaptive block selection on the GPU (adaptive_select.h).
//
// Scores: S = q̄_sel k̄ᵀ per (batch·head), in query-row chunks of at most 2²² scores (one matmul
// each, as on the host) so that 1M-token sequences do not hold nb² scores at once.
// Selection: one warp per (batch·head, row). The row's `more` = budget − forced blocks are the
// best candidates c ∈ [sinks, range), c ≠ r, in the total order (higher score, then lower index):
// `more` rounds of a warp arg-max, each over the candidates ranked after the previous round's
// pick, leave the threshold (the more-th best); then one pass emits, ascending, the sinks, the
// diagonal and every candidate ranked at or before the threshold (ballot + popc for the slots).
// O(more · range / 32) per row: fine at the sparsities adaptive runs at (5 % of the row's range).
// Transpose: every entry as the key (head, column, row); a radix sort (CUB) orders them by head,
// column, row, which is row_idx; per-(head, column) counts scanned give col_ptr. Deterministic.
#include "attention/kernels/cuda/adaptive_select.h"

#include <algorithm>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
#include <list>
#include <mutex>

#include "attention/kernels/cuda/device_layout.cuh"
#include "framework/cuda/graph.h"
#include "framework/cuda/runtime.h"
#include "framework/ops/ops.h"

namespace sparrow::attn::cuda {
namespace {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kIndexBits = 21;  // a head, column or row index in the transpose's sort key

// Candidate a ranks before candidate b: the higher score, ties to the lower index.
template <class T>
__device__ __forceinline__ bool ranks_before(T sa, int a, T sb, int b) {
  return sa > sb || (sa == sb && a < b);
}

// Rows [r0, r0 + rows) of every (batch·head). scores: [BH][rows][nb]. row_ptr: [BH][nb + 1],
// biased by each head's first entry; col_idx written at the row's slots.
template <class T>
__global__ void select_rows_kernel(const T* __restrict__ scores, int64_t bh_count, int64_t r0, int64_t rows, int nb,
                                   const int64_t* __restrict__ row_ptr, int sinks, bool causal,
                                   int32_t* __restrict__ col_idx) {
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (warp >= bh_count * rows) return;  // whole warps leave together: blockDim is a multiple of 32
  const int64_t bh = warp / rows;
  const int r = static_cast<int>(r0 + warp % rows);
  const T* s = scores + warp * nb;
  const int range = causal ? r + 1 : nb, ns = sinks < range ? sinks : range;
  const int64_t beg = row_ptr[bh * (nb + 1) + r];
  const int budget = static_cast<int>(row_ptr[bh * (nb + 1) + r + 1] - beg);
  const int more = budget - ns - (r >= ns ? 1 : 0);

  T thr_s = 0;
  int thr_c = -1;  // the last pick; none yet
  for (int t = 0; t < more; ++t) {
    T best_s = 0;
    int best_c = -1;
    for (int c = ns + lane; c < range; c += 32) {
      if (c == r) continue;
      const T sc = s[c];
      if (thr_c >= 0 && !ranks_before(thr_s, thr_c, sc, c)) continue;  // picked in an earlier round
      if (best_c < 0 || ranks_before(sc, c, best_s, best_c)) {
        best_s = sc;
        best_c = c;
      }
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      const T os = __shfl_xor_sync(kFull, best_s, off);
      const int oc = __shfl_xor_sync(kFull, best_c, off);
      if (oc >= 0 && (best_c < 0 || ranks_before(os, oc, best_s, best_c))) {
        best_s = os;
        best_c = oc;
      }
    }
    thr_s = best_s;  // every lane holds the same pick after the butterfly
    thr_c = best_c;
  }

  int32_t* out = col_idx + beg;
  int written = 0;
  for (int base = 0; base < range; base += 32) {
    const int c = base + lane;
    bool sel = false;
    if (c < range) {
      if (c < ns || c == r)
        sel = true;
      else if (thr_c >= 0)
        sel = !ranks_before(thr_s, thr_c, s[c], c);  // c ranks at or before the more-th best
    }
    const unsigned m = __ballot_sync(kFull, sel);
    if (sel) out[written + __popc(m & ((1u << lane) - 1u))] = c;
    written += __popc(m);
  }
}

// Per entry: its transpose key (head, column, row) and a count for its (head, column).
__global__ void transpose_keys_kernel(const int64_t* __restrict__ row_ptr, const int32_t* __restrict__ col_idx,
                                      int64_t bh_count, int nb, unsigned long long* __restrict__ keys,
                                      unsigned long long* __restrict__ counts) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= bh_count * nb) return;
  const int64_t bh = idx / nb, r = idx % nb;
  for (int64_t p = row_ptr[bh * (nb + 1) + r]; p < row_ptr[bh * (nb + 1) + r + 1]; ++p) {
    const int64_t c = col_idx[p];
    keys[p] = (static_cast<unsigned long long>(bh) << (2 * kIndexBits)) |
              (static_cast<unsigned long long>(c) << kIndexBits) | static_cast<unsigned long long>(r);
    atomicAdd(counts + bh * (nb + 1) + c + 1, 1ull);
  }
}

__global__ void rows_of_keys_kernel(const unsigned long long* __restrict__ sorted, int64_t n,
                                    int32_t* __restrict__ row_idx) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) row_idx[i] = static_cast<int32_t>(sorted[i] & ((1ull << kIndexBits) - 1));
}

unsigned blocks_for(int64_t threads, int per_block) {
  return static_cast<unsigned>((threads + per_block - 1) / per_block);
}

// The row pointers for (heads, budgets) on the current device, uploaded once and cached: inside
// a CUDA-graph capture the upload (a host wait) would fail the capture, and the eager steps
// before it fill the cache.
std::shared_ptr<const DeviceBuffer> row_pointers(int64_t heads, const std::vector<int64_t>& budgets,
                                                 int64_t* entries_per_head) {
  struct Entry {
    int device;
    int64_t heads;
    std::vector<int64_t> budgets;
    std::shared_ptr<const DeviceBuffer> buf;
  };
  static std::list<Entry> cache;  // most recently used first
  static std::mutex mu;
  const int device = sparrow::cuda::current_device();
  int64_t per_head = 0;
  for (int64_t b : budgets) per_head += b;
  *entries_per_head = per_head;
  std::lock_guard<std::mutex> lock(mu);
  for (auto it = cache.begin(); it != cache.end(); ++it)
    if (it->device == device && it->heads == heads && it->budgets == budgets) {
      cache.splice(cache.begin(), cache, it);
      sparrow::cuda::keep_alive_while_capturing(cache.front().buf);
      return cache.front().buf;
    }
  const int64_t nb = static_cast<int64_t>(budgets.size());
  std::vector<int64_t> rp(static_cast<size_t>(heads * (nb + 1)));
  for (int64_t h = 0; h < heads; ++h) {
    int64_t at = h * per_head;
    for (int64_t r = 0; r <= nb; ++r) {
      rp[static_cast<size_t>(h * (nb + 1) + r)] = at;
      if (r < nb) at += budgets[static_cast<size_t>(r)];
    }
  }
  auto buf = std::make_shared<DeviceBuffer>(rp.size() * 8, device);
  SPARROW_CUDA_CHECK(
      cudaMemcpyAsync(buf->data(), rp.data(), rp.size() * 8, cudaMemcpyHostToDevice, sparrow::cuda::stream()));
  SPARROW_CUDA_CHECK(cudaStreamSynchronize(sparrow::cuda::stream()));  // rp dies here
  cache.push_front(Entry{device, heads, budgets, buf});
  if (cache.size() > 16) cache.pop_back();
  sparrow::cuda::keep_alive_while_capturing(cache.front().buf);
  return cache.front().buf;
}

}  // namespace

std::shared_ptr<const DeviceLayout> select_layout_on_device(const Tensor& qsel, const Tensor& kbar,
                                                            const std::vector<int64_t>& budgets, int64_t sinks,
                                                            bool causal, int64_t block) {
  const char* op = "adaptive selection (cuda)";
  SPARROW_CHECK(qsel.dim() == 4 && kbar.shape() == qsel.shape() && qsel.is_cuda() && kbar.device() == qsel.device(), op,
                ": block means ", describe(qsel), " and ", describe(kbar), " (want one CUDA device, [B, H, nb, D])");
  SPARROW_CHECK(qsel.dtype() == kbar.dtype() && (qsel.dtype() == DType::F32 || qsel.dtype() == DType::F64), op,
                ": block means in ", dtype_name(qsel.dtype()), " (want f32 or f64)");
  const int64_t BH = qsel.size(0) * qsel.size(1), nb = qsel.size(2);
  SPARROW_CHECK(static_cast<int64_t>(budgets.size()) == nb, op, ": ", budgets.size(), " row budgets for ", nb,
                " blocks");
  SPARROW_CHECK(nb < (int64_t{1} << kIndexBits) && BH < (int64_t{1} << kIndexBits), op, ": ", nb, " blocks × ", BH,
                " heads exceed the transpose's key (", kIndexBits, " bits each)");
  for (int64_t r = 0; r < nb; ++r) {
    const int64_t range = causal ? r + 1 : nb, ns = std::min(sinks, range);
    SPARROW_CHECK(budgets[r] >= ns + (r >= ns ? 1 : 0) && budgets[r] <= range, op, ": row ", r, " budget ", budgets[r],
                  " outside [forced blocks, ", range, "]");
  }
  int64_t per_head = 0;
  std::shared_ptr<const DeviceBuffer> rp = row_pointers(BH, budgets, &per_head);
  const int64_t nnz = BH * per_head;
  const int device = sparrow::cuda::current_device();
  cudaStream_t st = sparrow::cuda::stream();

  // col_ptr (int64 [BH][nb + 1]), col_idx and row_idx (int32 [nnz]) in one buffer.
  const size_t b_cp = static_cast<size_t>(BH * (nb + 1)) * 8, b_idx = static_cast<size_t>(nnz) * 4;
  auto out = std::make_shared<DeviceLayout>();
  out->buffer = std::make_shared<DeviceBuffer>(b_cp + 2 * b_idx, device);
  out->row_ptr_buffer = rp;
  char* base = static_cast<char*>(out->buffer->data());
  auto* col_ptr = reinterpret_cast<int64_t*>(base);
  auto* col_idx = reinterpret_cast<int32_t*>(base + b_cp);
  auto* row_idx = reinterpret_cast<int32_t*>(base + b_cp + b_idx);
  const auto* row_ptr = static_cast<const int64_t*>(rp->data());

  // Selection, a chunk of query rows at a time.
  Tensor q = qsel.contiguous(), k = kbar.contiguous();
  // The host selection's chunks (adaptive.cpp), so both run the very same matmuls: scores equal
  // to the bit, and near-ties broken alike.
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(1, BH * nb));
  for (int64_t r0 = 0; r0 < nb; r0 += chunk) {
    const int64_t r1 = std::min(nb, r0 + chunk), rc = r1 - r0;
    const Tensor s = matmul(q.slice(2, r0, r1), k, false, true).contiguous();  // [B, H, rc, nb]
    const unsigned grid = blocks_for(BH * rc * 32, 256);
    if (s.dtype() == DType::F64)
      select_rows_kernel<double><<<grid, 256, 0, st>>>(s.data<double>(), BH, r0, rc, static_cast<int>(nb), row_ptr,
                                                       static_cast<int>(sinks), causal, col_idx);
    else
      select_rows_kernel<float><<<grid, 256, 0, st>>>(s.data<float>(), BH, r0, rc, static_cast<int>(nb), row_ptr,
                                                      static_cast<int>(sinks), causal, col_idx);
    SPARROW_CUDA_LAUNCH_CHECK();
  }

  // Transpose: keys sorted by (head, column, row); col_ptr from the scanned counts.
  auto keys = std::make_shared<DeviceBuffer>(static_cast<size_t>(nnz) * 16, device);  // keys, then sorted keys
  auto* k_in = static_cast<unsigned long long*>(keys->data());
  auto* k_out = k_in + nnz;
  auto counts = std::make_shared<DeviceBuffer>(b_cp, device);
  auto* cnt = static_cast<unsigned long long*>(counts->data());
  SPARROW_CUDA_CHECK(cudaMemsetAsync(cnt, 0, b_cp, st));
  transpose_keys_kernel<<<blocks_for(BH * nb, 256), 256, 0, st>>>(row_ptr, col_idx, BH, static_cast<int>(nb), k_in,
                                                                  cnt);
  SPARROW_CUDA_LAUNCH_CHECK();
  const int end_bit = 3 * kIndexBits;
  size_t sort_bytes = 0, scan_bytes = 0;
  SPARROW_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, sort_bytes, k_in, k_out, nnz, 0, end_bit, st));
  SPARROW_CUDA_CHECK(cub::DeviceScan::InclusiveSum(nullptr, scan_bytes, cnt,
                                                   reinterpret_cast<unsigned long long*>(col_ptr), BH * (nb + 1), st));
  auto temp = std::make_shared<DeviceBuffer>(std::max(sort_bytes, scan_bytes), device);
  SPARROW_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(temp->data(), sort_bytes, k_in, k_out, nnz, 0, end_bit, st));
  SPARROW_CUDA_CHECK(cub::DeviceScan::InclusiveSum(temp->data(), scan_bytes, cnt,
                                                   reinterpret_cast<unsigned long long*>(col_ptr), BH * (nb + 1), st));
  rows_of_keys_kernel<<<blocks_for(nnz, 256), 256, 0, st>>>(k_out, nnz, row_idx);
  SPARROW_CUDA_LAUNCH_CHECK();

  LayoutView& v = out->view;
  v.row_ptr = row_ptr;
  v.col_ptr = col_ptr;
  v.col_idx = col_idx;
  v.row_idx = row_idx;
  v.nh = static_cast<int>(BH);
  v.nqb = nb;
  v.nkb = nb;
  v.block = static_cast<int>(block);
  out->entries = nnz;
  return out;
}

HostCsr copy_to_host(const DeviceLayout& L) {
  const LayoutView& v = L.view;
  HostCsr h;
  h.heads = v.nh;
  h.nqb = v.nqb;
  h.nkb = v.nkb;
  h.block = v.block;
  h.row_ptr.resize(static_cast<size_t>(v.nh * (v.nqb + 1)));
  h.col_ptr.resize(static_cast<size_t>(v.nh * (v.nkb + 1)));
  h.col_idx.resize(static_cast<size_t>(L.entries));
  h.row_idx.resize(static_cast<size_t>(L.entries));
  cudaStream_t st = sparrow::cuda::stream();
  SPARROW_CUDA_CHECK(cudaMemcpyAsync(h.row_ptr.data(), v.row_ptr, h.row_ptr.size() * 8, cudaMemcpyDeviceToHost, st));
  SPARROW_CUDA_CHECK(cudaMemcpyAsync(h.col_ptr.data(), v.col_ptr, h.col_ptr.size() * 8, cudaMemcpyDeviceToHost, st));
  if (L.entries > 0) {
    SPARROW_CUDA_CHECK(cudaMemcpyAsync(h.col_idx.data(), v.col_idx, h.col_idx.size() * 4, cudaMemcpyDeviceToHost, st));
    SPARROW_CUDA_CHECK(cudaMemcpyAsync(h.row_idx.data(), v.row_idx, h.row_idx.size() * 4, cudaMemcpyDeviceToHost, st));
  }
  SPARROW_CUDA_CHECK(cudaStreamSynchronize(st));
  return h;
}

}  // namespace sparrow::attn::cuda
