// Fuzzes the corpus reader (train/data/corpus.cpp): files' bytes (text, gzip, dictzip) → tokens
// and documents, the token cache, and the train/validation split.
//
// Input: byte 0 picks the layout (bits 0-1: 0 one text file, 1 one .gz file, 2-3 a folder
// whose files are the rest of the input cut at each "\x01\x02" into a.txt, b.gz, c/d.txt, ...);
// byte 1 sets doc_bytes (1..256), byte 2 the validation fraction (0..255/256); the rest is the
// files' bytes. Contract checked: Corpus::open either returns or throws sparrow::Error; a
// corpus it returns is consistent (documents cover the tokens in order, separators between
// files, ranges within the corpus), and opening it again maps the same tokens from the cache.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "framework/core/error.h"
#include "fuzz_util.h"
#include "train/data/corpus.h"

using namespace sparrow;
namespace fs = std::filesystem;

namespace {

void check(const train::Corpus& c, double val_fraction) {
  const auto& d = c.doc_starts();
  if (d.size() < 2 || d.front() != 0 || d.back() != c.size()) fuzz::finding("document index does not cover the tokens");
  for (size_t i = 1; i < d.size(); ++i)
    if (d[i] <= d[i - 1]) fuzz::finding("documents out of order or empty");
  if (c.size() == 0 || c.tokens()[c.size() - 1] != train::kDocSeparator) fuzz::finding("corpus does not end with SEP");
  try {
    train::TokenRange t = c.train_range(val_fraction), v = c.val_range(val_fraction);
    if (t.begin != 0 || t.end != v.begin || v.end != c.size() || t.size() <= 0)
      fuzz::finding("train/validation ranges do not split the corpus");
    if (val_fraction > 0 && v.size() <= 0) fuzz::finding("empty validation range");
  } catch (const Error&) {  // one document cannot be split: a message, fine
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const int layout = data[0] & 3;
  const int64_t doc_bytes = 1 + data[1];
  const double val_fraction = data[2] / 256.0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 3, size - 3);

  const fs::path root = fuzz::scratch_dir() / "corpus";
  std::error_code ec;
  fs::remove_all(root, ec);
  fs::create_directories(root / "in");
  const fs::path cache = root / "cache";
  fs::path input;
  if (layout < 2) {
    input = root / "in" / (layout == 0 ? "text.txt" : "text.dict.dz");
    fuzz::write_bytes(input, body);
  } else {
    input = root / "in";
    static const char* names[] = {"a.txt", "b.gz", "c/d.txt", "c/e", "f.txt"};
    size_t pos = 0;
    for (int i = 0; pos <= body.size(); ++i) {
      size_t cut = body.find("\x01\x02", pos);
      if (cut == std::string_view::npos) cut = body.size();
      fs::path p = input / (i < 5 ? std::string(names[i]) : "g/" + std::to_string(i) + ".txt");
      fs::create_directories(p.parent_path());
      fuzz::write_bytes(p, body.substr(pos, cut - pos));
      pos = cut + 2;
    }
  }
  std::shared_ptr<const train::Corpus> c;
  try {
    c = train::Corpus::open(input.string(), cache.string(), doc_bytes);
  } catch (const Error&) {
    return 0;
  }
  check(*c, val_fraction);
  auto again = train::Corpus::open(input.string(), cache.string(), doc_bytes);
  if (!again->loaded_from_cache()) fuzz::finding("second open did not hit the cache");
  if (again->size() != c->size() || std::memcmp(again->tokens(), c->tokens(), static_cast<size_t>(c->size())) != 0 ||
      again->doc_starts() != c->doc_starts())
    fuzz::finding("the cache holds other tokens than the first open");
  return 0;
}
