#include "train/data/corpus.h"

#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "framework/core/error.h"

namespace fs = std::filesystem;

namespace sparrow::train {
namespace {

constexpr const char* kCacheVersion = "sparrow-corpus-v1";

struct SourceFile {
  std::string path;  // as opened
  std::string rel;   // relative to the corpus folder (the file name for a single file)
  uint64_t size = 0;
  int64_t mtime_ns = 0;
};

// FNV-1a, 64-bit: the cache name only has to change when an input changes.
struct Fnv {
  uint64_t h = 0xcbf29ce484222325ull;
  void add(const void* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const uint8_t*>(p)[i]) * 0x100000001b3ull;
  }
  void add(const std::string& s) { add(s.data(), s.size() + 1); }  // with the NUL: unambiguous joins
  void add(uint64_t v) { add(&v, sizeof v); }
};

bool stat_file(const std::string& path, SourceFile& f) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  f.size = static_cast<uint64_t>(st.st_size);
  f.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return true;
}

bool is_under(const fs::path& p, const fs::path& dir) {
  if (dir.empty()) return false;
  auto [d, q] = std::mismatch(dir.begin(), dir.end(), p.begin(), p.end());
  return d == dir.end();
}

// The files of the corpus in the order they are concatenated.
std::vector<SourceFile> list_sources(const std::string& path, const std::string& cache_dir) {
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) fail(path, ": no such file or folder (data.path)");
  std::vector<SourceFile> files;
  if (fs::is_regular_file(st)) {
    SourceFile f{path, fs::path(path).filename().string()};
    if (!stat_file(path, f)) fail(path, ": cannot stat: ", std::strerror(errno));
    files.push_back(f);
    return files;
  }
  if (!fs::is_directory(st)) fail(path, ": neither a file nor a folder");
  fs::path cache = fs::weakly_canonical(cache_dir, ec);
  fs::recursive_directory_iterator it(path, fs::directory_options::skip_permission_denied, ec), end;
  if (ec) fail(path, ": cannot list the folder: ", ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) fail(path, ": cannot list the folder: ", ec.message());
    if (!it->is_regular_file(ec)) continue;
    fs::path p = it->path();
    if (is_under(fs::weakly_canonical(p, ec), cache)) continue;  // never read our own cache
    SourceFile f{p.string(), fs::relative(p, path, ec).generic_string()};
    if (!stat_file(f.path, f)) continue;  // vanished while listing
    files.push_back(f);
  }
  std::sort(files.begin(), files.end(), [](const SourceFile& a, const SourceFile& b) { return a.rel < b.rel; });
  return files;
}

// Reads a whole file; gzip and dictzip (.gz, .dz) are inflated, other files pass through
// zlib unchanged (gzread reads non-gzip input as is).
std::string read_file(const std::string& path) {
  errno = 0;
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail(path, ": cannot read: ", errno ? std::strerror(errno) : "out of memory");
  gzbuffer(f, 1 << 17);
  std::string out;
  // Left uninitialised: zero-filling 1 MB for each file of a folder of small files costs more
  // than reading them (and the pages a small file never touches are never faulted in).
  constexpr unsigned kChunk = 1 << 20;
  std::unique_ptr<char[]> buf(new char[kChunk]);
  for (;;) {
    int n = gzread(f, buf.get(), kChunk);
    if (n < 0) {
      int code = 0;
      std::string msg = gzerror(f, &code);
      gzclose(f);
      fail(path, ": read error: ", code == Z_ERRNO ? std::strerror(errno) : msg);
    }
    if (n == 0) break;
    out.append(buf.get(), static_cast<size_t>(n));
  }
  // A truncated gzip stream reads as EOF with an error recorded.
  int code = 0;
  const char* msg = gzerror(f, &code);
  if (code != Z_OK && code != Z_STREAM_END) {
    std::string m = msg;
    gzclose(f);
    fail(path, ": read error: ", m);
  }
  gzclose(f);
  return out;
}

struct Built {
  int64_t files = 0, skipped_binary = 0;
};

// Tokenizes every source into tokens_tmp and its document index into docs (starts + total).
Built build(const std::string& path, bool single_file, const std::vector<SourceFile>& sources, int64_t doc_bytes,
            const std::string& tokens_tmp, std::vector<int64_t>& docs) {
  Built b;
  std::FILE* out = std::fopen(tokens_tmp.c_str(), "wb");
  if (!out) fail(tokens_tmp, ": cannot write the token cache: ", std::strerror(errno));
  int64_t offset = 0;
  docs.clear();
  for (const SourceFile& src : sources) {
    std::string text;
    try {
      text = read_file(src.path);
    } catch (...) {
      std::fclose(out);
      std::remove(tokens_tmp.c_str());
      throw;
    }
    if (text.find('\0') != std::string::npos) {
      if (single_file) {
        std::fclose(out);
        std::remove(tokens_tmp.c_str());
        fail(src.path, ": binary file (contains NUL bytes), not text");
      }
      ++b.skipped_binary;
      continue;
    }
    if (text.empty()) continue;
    ++b.files;
    // Documents of about doc_bytes, cut after a line break.
    const int64_t n = static_cast<int64_t>(text.size());
    int64_t s = 0;
    for (;;) {
      docs.push_back(offset + s);
      if (n - s <= doc_bytes) break;
      size_t nl = text.find('\n', static_cast<size_t>(s + doc_bytes - 1));
      if (nl == std::string::npos || static_cast<int64_t>(nl) + 1 >= n) break;
      s = static_cast<int64_t>(nl) + 1;
    }
    bool ok = std::fwrite(text.data(), 1, text.size(), out) == text.size() && std::fputc(kDocSeparator, out) != EOF;
    if (!ok) {
      std::fclose(out);
      std::remove(tokens_tmp.c_str());
      fail(tokens_tmp, ": write failed: ", std::strerror(errno));
    }
    offset += n + 1;
  }
  if (std::fclose(out) != 0) fail(tokens_tmp, ": write failed: ", std::strerror(errno));
  if (offset == 0) {
    std::remove(tokens_tmp.c_str());
    fail(path, ": the corpus is empty (no text", b.skipped_binary ? "; binary files skipped: " : "",
         b.skipped_binary ? std::to_string(b.skipped_binary) : "", ")");
  }
  docs.push_back(offset);
  return b;
}

bool read_index(const std::string& file, std::vector<int64_t>& docs) {
  std::ifstream in(file, std::ios::binary | std::ios::ate);
  if (!in) return false;
  std::streamoff n = in.tellg();
  if (n <= 0 || n % static_cast<std::streamoff>(sizeof(int64_t)) != 0) return false;
  docs.resize(static_cast<size_t>(n) / sizeof(int64_t));
  in.seekg(0);
  return static_cast<bool>(in.read(reinterpret_cast<char*>(docs.data()), n));
}

void write_file(const std::string& file, const void* data, size_t n) {
  std::FILE* out = std::fopen(file.c_str(), "wb");
  if (!out) fail(file, ": cannot write: ", std::strerror(errno));
  bool ok = std::fwrite(data, 1, n, out) == n;
  if (std::fclose(out) != 0 || !ok) fail(file, ": write failed: ", std::strerror(errno));
}

}  // namespace

std::shared_ptr<const Corpus> Corpus::open(const std::string& path, const std::string& cache_dir, int64_t doc_bytes) {
  SPARROW_CHECK(!path.empty(), "corpus: data.path is empty");
  SPARROW_CHECK(doc_bytes > 0, path, ": data.doc_bytes must be > 0, got ", doc_bytes);
  auto c = std::shared_ptr<Corpus>(new Corpus());
  c->path_ = path;
  std::error_code ec;
  const bool single_file = fs::is_regular_file(path, ec);
  std::vector<SourceFile> sources = list_sources(path, cache_dir);
  if (sources.empty()) fail(path, ": the corpus is empty (no files)");

  Fnv h;
  h.add(std::string(kCacheVersion));
  h.add(fs::weakly_canonical(path, ec).string());
  h.add(static_cast<uint64_t>(doc_bytes));
  for (const SourceFile& f : sources) {
    h.add(f.rel);
    h.add(f.size);
    h.add(static_cast<uint64_t>(f.mtime_ns));
  }
  char name[64];
  std::snprintf(name, sizeof name, "corpus-%016llx", static_cast<unsigned long long>(h.h));
  const fs::path dir = cache_dir.empty() ? fs::path(".") : fs::path(cache_dir);
  c->cache_file_ = (dir / (std::string(name) + ".tokens")).string();
  const std::string index_file = (dir / (std::string(name) + ".docs")).string();

  // A cache hit: both files, consistent with each other.
  if (fs::exists(c->cache_file_, ec) && read_index(index_file, c->doc_starts_)) {
    MappedFile m(c->cache_file_);
    const auto& d = c->doc_starts_;
    bool consistent = d.size() >= 2 && d.front() == 0 && d.back() == static_cast<int64_t>(m.size()) &&
                      std::is_sorted(d.begin(), d.end());
    if (consistent) {
      c->tokens_ = std::move(m);
      c->from_cache_ = true;
      return c;
    }
  }

  fs::create_directories(dir, ec);
  if (ec) fail(dir.string(), ": cannot create the cache folder (data.cache_dir): ", ec.message());
  // Write under temporary names and rename: concurrent ranks and interrupted runs never leave
  // a half-written cache under the final name.
  const std::string suffix = ".tmp." + std::to_string(::getpid());
  Built b = build(path, single_file, sources, doc_bytes, c->cache_file_ + suffix, c->doc_starts_);
  write_file(index_file + suffix, c->doc_starts_.data(), c->doc_starts_.size() * sizeof(int64_t));
  fs::rename(c->cache_file_ + suffix, c->cache_file_, ec);
  if (!ec) fs::rename(index_file + suffix, index_file, ec);
  if (ec) fail(c->cache_file_, ": cannot move the token cache into place: ", ec.message());
  c->files_ = b.files;
  c->skipped_binary_ = b.skipped_binary;
  c->tokens_ = MappedFile(c->cache_file_);
  return c;
}

int64_t Corpus::val_first_doc(double val_fraction) const {
  const int64_t docs = num_docs();
  if (val_fraction <= 0) return docs;
  SPARROW_CHECK(val_fraction < 1, path_, ": data.val_fraction must be < 1, got ", val_fraction);
  SPARROW_CHECK(docs >= 2, path_,
                ": one document cannot be split into train and validation; set "
                "data.val_fraction: 0 or a smaller data.doc_bytes");
  const double want = val_fraction * static_cast<double>(size());
  int64_t first = docs - 1;  // at least one validation document
  while (first > 1 && static_cast<double>(size() - doc_starts_[first]) < want) --first;
  return first;
}

TokenRange Corpus::range(int64_t first_doc, int64_t end_doc) const {
  return {doc_starts_[first_doc], doc_starts_[end_doc], first_doc, end_doc};
}

TokenRange Corpus::train_range(double val_fraction) const { return range(0, val_first_doc(val_fraction)); }
TokenRange Corpus::val_range(double val_fraction) const { return range(val_first_doc(val_fraction), num_docs()); }

}  // namespace sparrow::train
