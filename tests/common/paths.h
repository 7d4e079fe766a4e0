// Where tests find the source tree (configs/) and the built programs: the environment
// (SPARROW_SOURCE_DIR, SPARROW_BIN_DIR) when set, else the paths CMake compiled in.
#pragma once
#include <cstdlib>
#include <string>

namespace sparrow::testing {

inline std::string source_dir() {
  const char* s = std::getenv("SPARROW_SOURCE_DIR");
  return s ? s : SPARROW_SOURCE_DIR_DEFAULT;
}

inline std::string bin_dir() {
  const char* b = std::getenv("SPARROW_BIN_DIR");
  return b ? b : SPARROW_BIN_DIR_DEFAULT;
}

}  // namespace sparrow::testing
