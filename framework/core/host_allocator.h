// Host memory for tensors: 64-byte-aligned blocks, with freed large blocks kept for reuse.
//
// Why: glibc serves large blocks with mmap and hands them back to the kernel on free, so a loop
// that allocates and frees the same 16 MB buffers every step pays page faults on every touch
// (measured: ~20 ms of a 100 ms block-sparse attention forward+backward at N = 16K on the 2-core
// CI machine). Blocks of at least 1 MiB are therefore cached by size class (sizes rounded up to
// 1/8 of their power of two, so at most 12.5% slack) and handed out again; smaller blocks go
// straight to malloc, whose arenas already reuse them. The cache is capped (an eighth of
// physical memory, at most 4 GiB; SPARROW_HOST_CACHE_MB overrides, 0 disables) and is emptied
// before an allocation is allowed to fail.
#pragma once
#include <cstddef>

namespace sparrow::host_memory {

void* allocate(size_t nbytes);         // throws sparrow::Error when the host is out of memory
void release(void* p, size_t nbytes);  // nbytes as passed to allocate
void empty_cache();                    // returns every cached block to the system
size_t cached_bytes();

}  // namespace sparrow::host_memory
