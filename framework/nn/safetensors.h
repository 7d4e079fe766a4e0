// safetensors files (https://github.com/huggingface/safetensors), the real format:
//   8 bytes   N, the header length, unsigned little-endian
//   N bytes   JSON: {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//             "__metadata__": {"key": "value"}}  (padded with spaces to a multiple of 8)
//   the rest  the tensors' bytes, little-endian, row-major; offsets are relative to this section,
//             which the tensors cover exactly (no holes, no overlap).
// Dtypes: F32, F64, BF16, I32. Writes are atomic (framework/core/atomic_file.h), so a crash
// mid-write never leaves a torn checkpoint under the final name.
// Checksums: the writer stores each tensor's CRC-32 (framework/core/crc32.h, zlib's) in
// __metadata__ as "crc32.<name>": "8 hex digits"; the readers verify them and throw naming the
// file and the tensor on a mismatch. Files without checksums (written elsewhere) read unverified.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "framework/core/tensor.h"

namespace sparrow::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

struct SafetensorsContents {
  NamedTensors tensors;  // CPU tensors in the stored dtype, in file offset order
  std::map<std::string, std::string> metadata;
  bool verified = false;  // the file carried checksums and every tensor matched its own
};

// Writes the tensors (any device, any strides) under their names, with a checksum each in the
// metadata. Names must be unique and not "__metadata__".
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads and validates the whole file, checksums included.
SafetensorsContents read_safetensors(const std::string& path);

// The header's metadata alone (the header validated, the data not read).
std::map<std::string, std::string> read_safetensors_metadata(const std::string& path);

// Loads the file into existing tensors (any device): the file must hold exactly these names,
// each with the same shape and dtype, and match its checksum; every check runs before any
// destination is written (the data is read once more to check it), and a
// failure throws naming the file and the offending tensor. Returns the file's metadata.
std::map<std::string, std::string> load_safetensors_into(const std::string& path, const NamedTensors& dest);

// Whether a file's metadata carries the per-tensor checksums (Sparrow wrote it).
bool safetensors_has_checksums(const std::map<std::string, std::string>& metadata);

const char* safetensors_dtype_name(DType t);  // "F32", "F64", "BF16", "I32"

}  // namespace sparrow::nn
