// Fuzzes the safetensors reader (framework/nn/safetensors.cpp): a file's bytes → tensors.
//
// Input: the whole file. Contract checked: read_safetensors and load_safetensors_into either
// succeed or throw sparrow::Error (any other exception, crash, UB or huge allocation is a
// finding); what read_safetensors returns agrees with the header (sizes within the file).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "framework/core/error.h"
#include "framework/nn/safetensors.h"
#include "fuzz_util.h"

using namespace sparrow;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = (fuzz::scratch_dir() / "input.safetensors").string();
  fuzz::write_bytes(path, std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    nn::SafetensorsContents c = nn::read_safetensors(path);
    size_t total = 0;
    for (auto& [name, t] : c.tensors) {
      for (int64_t d : t.shape())
        if (d < 0) fuzz::finding("tensor '" + name + "' has a negative dimension");
      // numel too: a wrapped byte count would hide a tensor larger than its storage.
      if (static_cast<uint64_t>(t.numel()) > size || t.nbytes() > size)
        fuzz::finding("tensor '" + name + "' is larger than the file");
      total += t.nbytes();
    }
    if (total > size) fuzz::finding("tensors hold more bytes than the file");
  } catch (const Error&) {}
  // The loading path a checkpoint takes: into existing tensors of fixed names, shapes, dtypes.
  static const nn::NamedTensors dest = {
      {"w", zeros({2, 3}, DType::F32)}, {"b", zeros({3}, DType::BF16)}, {"n", zeros({0, 4}, DType::I32)}};
  try {
    nn::load_safetensors_into(path, dest);
  } catch (const Error&) {}
  return 0;
}
