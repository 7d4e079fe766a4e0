// SPARROW_DISPATCH(device, fn, args...): the one way an op reaches its device kernel.
//
// Every op has a kernel of the same name for each device, cpu::fn and cuda::fn (ops/cpu/ and
// ops/cuda/, attention/kernels/cpu/ and cuda/, ...), and its front end picks one by the device of
// its tensors. The choice is written once, here, so that a front end never spells out
// `#ifdef SPARROW_WITH_CUDA` or an is_cuda() branch, and both builds compile the same front end:
//   - with CUDA: `device.is_cuda() ? cuda::fn(args...) : cpu::fn(args...)`;
//   - without: the CPU kernel alone; a CUDA device throws sparrow::Error naming the kernel (only
//     an empty CUDA tensor can get there: allocating any other fails first), and cuda::fn is
//     never referenced, so it need not exist.
// The kernel headers (ops/cuda/*.h, ...) declare plain C++ functions on Tensors with no CUDA types,
// so a front end includes them in both builds. cpu and cuda are looked up from the calling
// namespace: sparrow::cpu in framework/, sparrow::attn::cpu in attention/. It is an expression
// whose value is the kernel's result (both kernels return the same type).
#pragma once
#include <string>

#include "framework/core/device.h"
#include "framework/core/error.h"

namespace sparrow::detail {

// The error for a CUDA device in a build without CUDA.
inline Error no_cuda_kernel(const char* kernel, const Device& device) {
  return Error(std::string(kernel) + ": a tensor on " + device.str() +
               ", but Sparrow was built without CUDA (configure with SPARROW_CUDA=ON)");
}

}  // namespace sparrow::detail

#ifdef SPARROW_WITH_CUDA
#define SPARROW_DISPATCH(device, fn, ...) ((device).is_cuda() ? cuda::fn(__VA_ARGS__) : cpu::fn(__VA_ARGS__))
#else
#define SPARROW_DISPATCH(device, fn, ...) \
  ((device).is_cuda() ? throw ::sparrow::detail::no_cuda_kernel(#fn, (device)) : cpu::fn(__VA_ARGS__))
#endif
