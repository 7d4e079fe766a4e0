// Where tests find the source tree (configs/), the built programs and the training data: the
// environment (SPARROW_SOURCE_DIR, SPARROW_BIN_DIR, SPARROW_TEST_CORPUS) when set, else the paths
// CMake compiled in and the configs' own data.path (Debian's dict-gcide).
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace sparrow::testing {

inline std::string source_dir() {
  const char* s = std::getenv("SPARROW_SOURCE_DIR");
  return s ? s : SPARROW_SOURCE_DIR_DEFAULT;
}

inline std::string bin_dir() {
  const char* b = std::getenv("SPARROW_BIN_DIR");
  return b ? b : SPARROW_BIN_DIR_DEFAULT;
}

// Config overrides every training test adds: a shared token cache in the temp folder, and the
// corpus from SPARROW_TEST_CORPUS on hosts that keep it elsewhere than dict-gcide's path.
inline std::vector<std::string> data_overrides() {
  std::vector<std::string> o{"data.cache_dir=" +
                             (std::filesystem::temp_directory_path() / "sparrow_test_cache").string()};
  if (const char* corpus = std::getenv("SPARROW_TEST_CORPUS")) o.push_back(std::string("data.path=") + corpus);
  return o;
}

}  // namespace sparrow::testing
