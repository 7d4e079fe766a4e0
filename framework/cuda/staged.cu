#include "framework/cuda/staged.h"

#include "framework/cuda/allocator.h"
#include "framework/cuda/graph.h"
#include "framework/cuda/runtime.h"

namespace sparrow::cuda {

StagedBytes::StagedBytes(size_t bytes, int device) : bytes_(bytes), device_(device) {
  SPARROW_CUDA_CHECK(cudaHostAlloc(&host_, bytes_, cudaHostAllocDefault));
  dev_ = allocate(bytes_, device_);
  cudaEvent_t e = nullptr;
  SPARROW_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  read_event_ = e;
}

StagedBytes::~StagedBytes() {
  // Queued copies or a graph may still read these: let the stream drain before freeing.
  cudaStreamSynchronize(stream());
  cudaEventDestroy(static_cast<cudaEvent_t>(read_event_));
  cudaFreeHost(host_);
  release(dev_, bytes_, device_);
}

void* StagedBytes::host() {
  if (pending_) SPARROW_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(read_event_)));
  pending_ = false;
  return host_;
}

const void* StagedBytes::upload() {
  SPARROW_CUDA_CHECK(cudaMemcpyAsync(dev_, host_, bytes_, cudaMemcpyHostToDevice, stream()));
  // Inside a capture the copy is a graph node; the caller waits for each replay itself.
  if (!capturing()) {
    SPARROW_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(read_event_), stream()));
    pending_ = true;
  }
  return dev_;
}

}  // namespace sparrow::cuda
