// A byte-level text corpus (token = byte, vocab 256) from a text file, a gzip/dictzip file
// (.gz, .dz: read through zlib) or a folder of text files (recursive, sorted by path; files
// holding NUL bytes are binary and skipped).
//
// The first open tokenizes into one flat uint8 file under cache_dir, named by a hash of
// (path, doc_bytes, every file's relative path, size and mtime), plus a document index; later
// opens memory-map it. Layout of the flat file:
//     file_0 bytes, SEP, file_1 bytes, SEP, ...            SEP = kDocSeparator (byte 0)
// NUL never occurs in text we accept, so the separator is unambiguous. Documents are files;
// files longer than doc_bytes are cut into documents of about doc_bytes at a line break (the
// pieces follow each other with no separator: they are one text), so even a one-file corpus
// such as the GCIDE dictionary splits by document into train and validation.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "train/data/mapped_file.h"

namespace sparrow::train {

constexpr uint8_t kDocSeparator = 0;

// A contiguous run of whole documents: tokens [begin, end) of the flat file.
struct TokenRange {
  int64_t begin = 0, end = 0;
  int64_t first_doc = 0, end_doc = 0;  // documents [first_doc, end_doc)
  int64_t size() const { return end - begin; }
};

class Corpus {
 public:
  // Throws sparrow::Error with one line naming the path: missing, unreadable, binary (for a
  // single file), empty.
  static std::shared_ptr<const Corpus> open(const std::string& path, const std::string& cache_dir,
                                            int64_t doc_bytes = 1 << 20);

  const uint8_t* tokens() const { return tokens_.data(); }
  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }
  // Start offset of each document, and size() at the end: num_docs() + 1 entries.
  const std::vector<int64_t>& doc_starts() const { return doc_starts_; }
  int64_t num_docs() const { return static_cast<int64_t>(doc_starts_.size()) - 1; }

  const std::string& path() const { return path_; }
  const std::string& cache_file() const { return cache_file_; }
  bool loaded_from_cache() const { return from_cache_; }  // true: mapped an existing cache file
  int64_t files() const { return files_; }                // text files read (0 when from cache)
  int64_t skipped_binary() const { return skipped_binary_; }

  // Train/validation split by whole documents: validation is the trailing documents holding at
  // least val_fraction of the tokens (at least one document when val_fraction > 0), train is the
  // rest (at least one document). Deterministic: it depends only on the corpus.
  TokenRange train_range(double val_fraction) const;
  TokenRange val_range(double val_fraction) const;

 private:
  int64_t val_first_doc(double val_fraction) const;
  TokenRange range(int64_t first_doc, int64_t end_doc) const;

  std::string path_, cache_file_;
  MappedFile tokens_;
  std::vector<int64_t> doc_starts_;
  bool from_cache_ = false;
  int64_t files_ = 0, skipped_binary_ = 0;
};

}  // namespace sparrow::train
