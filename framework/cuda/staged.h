// A few bytes of per-step values (a learning rate, bias corrections) that kernels read from device
// memory: the host writes them into pinned memory, and upload() issues the copy to the device on
// the stream. A captured CUDA graph records that copy, so every replay reads the host's latest
// values, where a kernel argument would stay frozen at its captured value.
// Plain C++ interface (no CUDA types), so CPU/GPU front ends such as optim/adamw.cpp can hold one.
#pragma once
#include <cstddef>

namespace sparrow::cuda {

class StagedBytes {
 public:
  StagedBytes(size_t bytes, int device);
  ~StagedBytes();
  StagedBytes(const StagedBytes&) = delete;
  StagedBytes& operator=(const StagedBytes&) = delete;

  // The pinned host copy to write. Waits first until the last eager upload has read it (the
  // copy runs when the stream reaches it, which may be after the host has moved on).
  void* host();
  // Issues the host → device copy on the stream and returns the device copy.
  const void* upload();

 private:
  size_t bytes_;
  int device_;
  void* host_ = nullptr;
  void* dev_ = nullptr;
  void* read_event_ = nullptr;  // cudaEvent_t recorded after each eager upload
  bool pending_ = false;
};

}  // namespace sparrow::cuda
