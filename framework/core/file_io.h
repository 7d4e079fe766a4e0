// Whole-file reads and writes for small files (configs, pictures) that fail loudly: each
// failure is a one-line sparrow::Error "PATH: reason". A read refuses what is not a regular
// file (/dev/zero would never end) or is over `max_bytes` (a hostile file must not exhaust
// memory); a write checks every byte and the final flush and close (/dev/full fails only
// there), so "written" always means written.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace sparrow {

// The file's bytes. `what` names the kind of file in messages ("config file").
std::string read_small_file(const std::string& path, uint64_t max_bytes, const char* what);

// Creates or truncates `path` and writes `bytes` to it.
void write_whole_file(const std::string& path, std::string_view bytes);

}  // namespace sparrow
