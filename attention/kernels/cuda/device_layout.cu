#include "attention/kernels/cuda/device_layout.cuh"

#include <cstring>
#include <list>
#include <mutex>
#include <string>
#include <utility>

#include "framework/cuda/allocator.h"
#include "framework/cuda/graph.h"
#include "framework/cuda/runtime.h"

namespace sparrow::attn::cuda {

DeviceBuffer::DeviceBuffer(size_t bytes, int device) : bytes_(bytes < 16 ? 16 : bytes), device_(device) {
  ptr_ = sparrow::cuda::allocate(bytes_, device_);
}
DeviceBuffer::~DeviceBuffer() {
  // Work already queued on the one stream finishes before the allocator reuses the block.
  if (ptr_) sparrow::cuda::release(ptr_, bytes_, device_);
}

namespace {

constexpr size_t kMaxCachedLayouts = 64;
constexpr size_t kMaxCachedKeyLast = 16;

uint64_t fnv(uint64_t h, uint64_t x) {
  for (int b = 0; b < 8; ++b) {
    h ^= (x >> (8 * b)) & 0xffu;
    h *= 1099511628211ull;
  }
  return h;
}

// Cheap content signature: every size, each head's nnz, the description, and up to 64 evenly
// spaced entries of each array.
uint64_t fingerprint(const BlockLayout& L) {
  uint64_t h = 1469598103934665603ull;
  for (int64_t x : {L.seq_len, L.key_len, L.block_size, L.num_q_blocks, L.num_k_blocks, static_cast<int64_t>(L.causal),
                    static_cast<int64_t>(L.heads.size())})
    h = fnv(h, static_cast<uint64_t>(x));
  for (char c : L.description) h = fnv(h, static_cast<unsigned char>(c));
  for (const BlockCSR& c : L.heads) {
    h = fnv(h, c.col_idx.size());
    h = fnv(h, c.row_ptr.size());
    const size_t n = c.col_idx.size(), step = n / 64 + 1;
    for (size_t i = 0; i < n; i += step) h = fnv(h, static_cast<uint64_t>(c.col_idx[i]));
    const size_t nr = c.row_ptr.size(), rstep = nr / 64 + 1;
    for (size_t i = 0; i < nr; i += rstep) h = fnv(h, static_cast<uint64_t>(c.row_ptr[i]));
  }
  return h;
}

void check_csr(const BlockLayout& L, size_t head, const BlockCSR& c) {
  const char* op = "block_attention (cuda): layout ";
  SPARROW_CHECK(static_cast<int64_t>(c.row_ptr.size()) == L.num_q_blocks + 1, op, "head ", head, " row_ptr has ",
                c.row_ptr.size(), " entries for ", L.num_q_blocks, " query blocks");
  SPARROW_CHECK(c.row_ptr.front() == 0 && c.row_ptr.back() == c.nnz(), op, "head ", head,
                " row_ptr does not span col_idx");
  for (int64_t r = 0; r < L.num_q_blocks; ++r) {
    SPARROW_CHECK(c.row_ptr[r] <= c.row_ptr[r + 1], op, "head ", head, " row_ptr decreases at row ", r);
    for (int64_t p = c.row_ptr[r]; p < c.row_ptr[r + 1]; ++p)
      SPARROW_CHECK(c.col_idx[p] >= 0 && c.col_idx[p] < L.num_k_blocks, op, "head ", head, " row ", r, ": key block ",
                    c.col_idx[p], " outside [0, ", L.num_k_blocks, ")");
  }
}

// The transpose (col_ptr/row_idx), computed here when the layout did not store it.
void transpose(const BlockCSR& c, int64_t nqb, int64_t nkb, std::vector<int64_t>& col_ptr,
               std::vector<int32_t>& row_idx) {
  col_ptr.assign(nkb + 1, 0);
  for (int32_t kb : c.col_idx) ++col_ptr[kb + 1];
  for (int64_t b = 0; b < nkb; ++b) col_ptr[b + 1] += col_ptr[b];
  row_idx.assign(c.col_idx.size(), 0);
  std::vector<int64_t> fill(col_ptr.begin(), col_ptr.end() - 1);
  for (int64_t r = 0; r < nqb; ++r)  // rows in order: row_idx ascends within each column
    for (int64_t p = c.row_ptr[r]; p < c.row_ptr[r + 1]; ++p) row_idx[fill[c.col_idx[p]]++] = static_cast<int32_t>(r);
}

struct LayoutEntry {
  const BlockLayout* key = nullptr;
  int device = 0;
  uint64_t fp = 0;
  std::shared_ptr<const DeviceLayout> dev;
};

std::shared_ptr<DeviceLayout> upload(const BlockLayout& L, int device) {
  const int64_t nqb = L.num_q_blocks, nkb = L.num_k_blocks;
  const size_t nh = L.heads.size();
  std::vector<int64_t> row_ptr, col_ptr;
  std::vector<int32_t> col_idx, row_idx;
  row_ptr.reserve(nh * (nqb + 1));
  col_ptr.reserve(nh * (nkb + 1));
  for (size_t h = 0; h < nh; ++h) {
    const BlockCSR& c = L.heads[h];
    check_csr(L, h, c);
    const int64_t base = static_cast<int64_t>(col_idx.size());
    for (int64_t x : c.row_ptr) row_ptr.push_back(base + x);
    col_idx.insert(col_idx.end(), c.col_idx.begin(), c.col_idx.end());
    std::vector<int64_t> cp;
    std::vector<int32_t> ri;
    if (static_cast<int64_t>(c.col_ptr.size()) == nkb + 1 && c.row_idx.size() == c.col_idx.size()) {
      cp = c.col_ptr;
      ri = c.row_idx;
      SPARROW_CHECK(cp.front() == 0 && cp.back() == c.nnz(), "block_attention (cuda): layout head ", h,
                    " col_ptr does not span row_idx");
      for (int64_t b = 0; b < nkb; ++b)
        for (int64_t p = cp[b]; p < cp[b + 1]; ++p)
          SPARROW_CHECK(cp[b] <= cp[b + 1] && ri[p] >= 0 && ri[p] < nqb, "block_attention (cuda): layout head ", h,
                        " transpose entry outside [0, ", nqb, ")");
    } else {
      transpose(c, nqb, nkb, cp, ri);
    }
    for (int64_t x : cp) col_ptr.push_back(base + x);
    row_idx.insert(row_idx.end(), ri.begin(), ri.end());
  }
  const size_t b_rp = row_ptr.size() * 8, b_cp = col_ptr.size() * 8, b_ci = col_idx.size() * 4;
  const size_t b_ri = row_idx.size() * 4;
  auto out = std::make_shared<DeviceLayout>();
  out->buffer = std::make_shared<DeviceBuffer>(b_rp + b_cp + b_ci + b_ri, device);
  char* p = static_cast<char*>(out->buffer->data());
  std::vector<char> host(b_rp + b_cp + b_ci + b_ri);
  std::memcpy(host.data(), row_ptr.data(), b_rp);
  std::memcpy(host.data() + b_rp, col_ptr.data(), b_cp);
  if (b_ci) std::memcpy(host.data() + b_rp + b_cp, col_idx.data(), b_ci);
  if (b_ri) std::memcpy(host.data() + b_rp + b_cp + b_ci, row_idx.data(), b_ri);
  SPARROW_CUDA_CHECK(cudaMemcpyAsync(p, host.data(), host.size(), cudaMemcpyHostToDevice, sparrow::cuda::stream()));
  // The staging copy of pageable memory is complete on return, but `host` dies here: make sure.
  SPARROW_CUDA_CHECK(cudaStreamSynchronize(sparrow::cuda::stream()));
  LayoutView& v = out->view;
  v.row_ptr = reinterpret_cast<const int64_t*>(p);
  v.col_ptr = reinterpret_cast<const int64_t*>(p + b_rp);
  v.col_idx = reinterpret_cast<const int32_t*>(p + b_rp + b_cp);
  v.row_idx = reinterpret_cast<const int32_t*>(p + b_rp + b_cp + b_ci);
  v.nh = static_cast<int>(nh);
  v.nqb = nqb;
  v.nkb = nkb;
  v.block = static_cast<int>(L.block_size);
  out->entries = static_cast<int64_t>(col_idx.size());
  out->fixed = true;
  return out;
}

std::mutex& cache_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

std::shared_ptr<const DeviceLayout> device_layout(const BlockLayout& layout, int num_heads) {
  const int device = sparrow::cuda::current_device();
  SPARROW_CHECK(layout.heads.size() == 1 || static_cast<int64_t>(layout.heads.size()) == num_heads,
                "block_attention (cuda): layout has ", layout.heads.size(), " heads for ", num_heads,
                " attention heads (want 1 or ", num_heads, ")");
  const uint64_t fp = fingerprint(layout);
  static std::list<LayoutEntry> cache;  // most recently used first
  std::lock_guard<std::mutex> lock(cache_mutex());
  for (auto it = cache.begin(); it != cache.end(); ++it) {
    if (it->key == &layout && it->device == device) {
      if (it->fp == fp) {
        cache.splice(cache.begin(), cache, it);
        // A captured graph reads this buffer at every replay, after the cache may have dropped it.
        sparrow::cuda::keep_alive_while_capturing(cache.front().dev);
        return cache.front().dev;
      }
      cache.erase(it);  // same address, different layout: the old one was freed
      break;
    }
  }
  LayoutEntry e{&layout, device, fp, upload(layout, device)};
  cache.push_front(std::move(e));
  if (cache.size() > kMaxCachedLayouts) cache.pop_back();
  sparrow::cuda::keep_alive_while_capturing(cache.front().dev);
  return cache.front().dev;
}

std::shared_ptr<const DeviceBuffer> device_key_last(const std::vector<int64_t>& key_last) {
  if (key_last.empty()) return nullptr;
  const int device = sparrow::cuda::current_device();
  uint64_t h = 1469598103934665603ull;
  for (int64_t x : key_last) h = fnv(h, static_cast<uint64_t>(x));
  struct Entry {
    int device;
    size_t n;
    uint64_t hash;
    std::shared_ptr<const DeviceBuffer> buf;
  };
  static std::list<Entry> cache;
  std::lock_guard<std::mutex> lock(cache_mutex());
  for (auto it = cache.begin(); it != cache.end(); ++it)
    if (it->device == device && it->n == key_last.size() && it->hash == h) {
      cache.splice(cache.begin(), cache, it);
      sparrow::cuda::keep_alive_while_capturing(cache.front().buf);
      return cache.front().buf;
    }
  std::vector<int32_t> v(key_last.size());
  for (size_t i = 0; i < v.size(); ++i) {
    SPARROW_CHECK(key_last[i] >= 0 && key_last[i] <= INT32_MAX, "block_attention (cuda): key_last[", i,
                  "] = ", key_last[i], " is not a position");
    v[i] = static_cast<int32_t>(key_last[i]);
  }
  auto buf = std::make_shared<DeviceBuffer>(v.size() * 4, device);
  SPARROW_CUDA_CHECK(
      cudaMemcpyAsync(buf->data(), v.data(), v.size() * 4, cudaMemcpyHostToDevice, sparrow::cuda::stream()));
  SPARROW_CUDA_CHECK(cudaStreamSynchronize(sparrow::cuda::stream()));
  cache.push_front(Entry{device, key_last.size(), h, buf});
  if (cache.size() > kMaxCachedKeyLast) cache.pop_back();
  return buf;
}

}  // namespace sparrow::attn::cuda
