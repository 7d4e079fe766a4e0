// CPU-only build: StagedBytes exists so that the front ends holding one (optim/adamw.cpp) are one
// path in both builds. It serves a GPU only, so making one here fails.
#ifndef SPARROW_WITH_CUDA
#include "framework/core/error.h"
#include "framework/cuda/staged.h"

namespace sparrow::cuda {

StagedBytes::StagedBytes(size_t bytes, int device) : bytes_(bytes), device_(device) {
  fail("StagedBytes on cuda:", device_, " (", bytes_, " bytes): Sparrow was built without CUDA");
}
StagedBytes::~StagedBytes() = default;
void* StagedBytes::host() { return host_; }
const void* StagedBytes::upload() { return dev_; }

}  // namespace sparrow::cuda
#endif
