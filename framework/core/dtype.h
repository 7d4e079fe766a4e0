// Element types a Tensor can hold. F32 is the CPU compute type, F64 exists for gradient
// checks, BF16 is the GPU storage/compute type, I32 holds token ids and targets.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sparrow {

enum class DType : uint8_t { F32, F64, BF16, I32 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32:
      return 4;
    case DType::F64:
      return 8;
    case DType::BF16:
      return 2;
    case DType::I32:
      return 4;
  }
  return 0;
}

constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "f32";
    case DType::F64:
      return "f64";
    case DType::BF16:
      return "bf16";
    case DType::I32:
      return "i32";
  }
  return "?";
}

constexpr bool is_floating(DType t) { return t != DType::I32; }

// Parses "f32" / "float32", "f64" / "float64", "bf16" / "bfloat16", "i32"; throws on others.
DType parse_dtype(const std::string& s);

}  // namespace sparrow
