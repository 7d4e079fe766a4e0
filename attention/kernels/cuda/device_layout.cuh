// Block layouts and key_last arrays on the GPU. A layout's CSR (and its transpose) is uploaded
// once per (layout, device) and cached, so a training step never copies it again; the cache is
// keyed by the BlockLayout's address plus a fingerprint of its contents (sizes, per-head nnz, the
// description and sampled entries), which catches a freed layout whose address was reused.
// Included only from .cu files.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "attention/kernels/cuda/block_attention_walk.cuh"
#include "attention/layout/block_layout.h"

namespace sparrow::attn::cuda {

// Device memory from the caching allocator, released when the last holder lets go.
class DeviceBuffer {
 public:
  DeviceBuffer(size_t bytes, int device);
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* data() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  int device_ = 0;
};

struct DeviceLayout {
  std::shared_ptr<DeviceBuffer> buffer;  // row_ptr, col_ptr (int64), col_idx, row_idx (int32)
  // Where row_ptr lives in a buffer of its own (adaptive selection on the device caches the row
  // pointers its budgets fix: adaptive_select.cu); null when it is in `buffer`.
  std::shared_ptr<const DeviceBuffer> row_ptr_buffer;
  LayoutView view;
  int64_t entries = 0;  // Σ nnz over the stored heads
  // Uploaded from a host layout (device_layout()): the contents never change, so what is derived
  // from them may be kept. Adaptive selection's layouts (adaptive_select.cu) change every call.
  bool fixed = false;
  // What the sm_90a kernels derive from a fixed layout (block_attention.cu, kept_with_layout: the
  // forward's full/partial lists, the persistent grids' plans), keyed by what it holds and
  // everything else it depends on: a training step then makes none of it.
  mutable std::mutex kept_mu;
  mutable std::map<std::vector<int64_t>, std::shared_ptr<DeviceBuffer>> kept;
};

// The layout on the current device (validated on first upload: a malformed CSR throws
// sparrow::Error instead of reading out of bounds on the GPU). Thread-safe.
std::shared_ptr<const DeviceLayout> device_layout(const BlockLayout& layout, int num_heads);

// key_last as int32 on the current device (cached by contents); null when key_last is empty.
std::shared_ptr<const DeviceBuffer> device_key_last(const std::vector<int64_t>& key_last);

}  // namespace sparrow::attn::cuda
