// CRC-32 (the zlib / PNG / gzip polynomial, reflected 0xEDB88320): the checksum written beside
// every tensor of a safetensors file and every checkpoint state, so a flipped bit is caught at
// load. The values equal zlib's crc32() and Python's zlib.crc32(), so a file can be checked
// without Sparrow. Own code rather than zlib: the framework library does not link zlib.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sparrow {

// Continues `crc` (0 to start) over n bytes: crc32(b, crc32(a)) == crc32(a + b).
uint32_t crc32(const void* data, size_t n, uint32_t crc = 0);
inline uint32_t crc32(std::string_view s, uint32_t crc = 0) { return crc32(s.data(), s.size(), crc); }

// Eight lowercase hex digits, the form stored in files.
std::string crc32_hex(uint32_t crc);

}  // namespace sparrow
