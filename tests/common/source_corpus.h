// A small corpus of real, varied text for tests that need held-out documents longer than a
// tiny model's sequence: the project's own C++ sources under train/ and models/, one file each.
#pragma once
#include <filesystem>

#include "common/paths.h"

namespace sparrow::testing {

inline void make_source_corpus(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  for (const char* sub : {"train", "models"})
    for (const auto& e : fs::recursive_directory_iterator(fs::path(source_dir()) / sub))
      if (e.is_regular_file() && (e.path().extension() == ".cpp" || e.path().extension() == ".h")) {
        const fs::path rel = fs::relative(e.path(), source_dir());
        fs::create_directories(dir / rel.parent_path());
        fs::copy_file(e.path(), dir / rel, fs::copy_options::overwrite_existing);
      }
}

}  // namespace sparrow::testing
