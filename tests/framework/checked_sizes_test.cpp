// Sizes computed from untrusted numbers (file headers, shapes) never wrap: an element or byte
// count past 64 bits is an error naming the shape, and a safetensors header whose shape would
// wrap to a small size is refused naming the file and the tensor.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>

#include "framework/core/checked_math.h"
#include "framework/core/error.h"
#include "framework/core/shape.h"
#include "framework/core/tensor.h"
#include "framework/nn/safetensors.h"

namespace fs = std::filesystem;
using namespace sparrow;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A safetensors file with this JSON header and `data_bytes` zero bytes of data.
std::string write_raw_safetensors(const std::string& name, const std::string& header, size_t data_bytes) {
  const std::string path =
      (fs::temp_directory_path() / ("sparrow_checked_" + name + "_" + std::to_string(::getpid()) + ".safetensors"))
          .string();
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>(n >> (8 * i)));
  out << header << std::string(data_bytes, '\0');
  return path;
}

}  // namespace

TEST(CheckedMul, ReportsOverflowInsteadOfWrapping) {
  EXPECT_EQ(checked_mul<int64_t>(3, 4), 12);
  EXPECT_EQ(checked_mul<int64_t>(INT64_MAX, 1), INT64_MAX);
  EXPECT_FALSE(checked_mul<int64_t>(int64_t(1) << 32, int64_t(1) << 32).has_value());
  EXPECT_FALSE(checked_mul<int64_t>(INT64_MAX, 2).has_value());
  EXPECT_FALSE(checked_mul<uint64_t>(UINT64_MAX, 2).has_value());
}

TEST(ShapeNumel, OverflowIsAnErrorNamingTheShape) {
  EXPECT_EQ(shape_numel({2, 3, 4}), 24);
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_EQ(shape_numel({0, int64_t(1) << 62}), 0);
  const int64_t big = int64_t(1) << 32;
  EXPECT_EQ(error_of([&] {
              shape_numel({big, big});
            }),
            "shape [4294967296, 4294967296]: element count overflows 64 bits");
  // Fits as elements, not as bytes.
  EXPECT_EQ(shape_nbytes({int64_t(1) << 40}, 4), int64_t(1) << 42);
  EXPECT_EQ(error_of([] { shape_nbytes({int64_t(1) << 62}, 4); }),
            "shape [4611686018427387904]: byte size (4-byte elements) overflows 64 bits");
  // A tensor that large is refused before any allocation is attempted.
  EXPECT_NE(error_of([] { empty({int64_t(1) << 62}, DType::F32, Device::cpu()); }).find("overflows 64 bits"),
            std::string::npos);
}

TEST(SafetensorsHeader, ShapeWhoseSizeWrapsIsRefused) {
  // 2^32 · 2^32 elements wrap to 0 in 64 bits: with data_offsets [0, 0] it used to load.
  const std::string path =
      write_raw_safetensors("wrap", R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0);
  EXPECT_EQ(error_of([&] { nn::read_safetensors(path); }),
            "safetensors " + path + ": tensor 'w': shape [4294967296, 4294967296]: element count overflows 64 bits");
  fs::remove(path);
}

TEST(SafetensorsHeader, DimensionPastInt64IsRefused) {
  const std::string path =
      write_raw_safetensors("dim", R"({"w":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,4]}})", 4);
  EXPECT_EQ(error_of([&] { nn::read_safetensors(path); }),
            "safetensors " + path + ": tensor 'w': bad dimension 18446744073709551615");
  fs::remove(path);
}

TEST(SafetensorsHeader, SpanMustEqualTheByteSizeAndLieInTheFile) {
  const std::string short_span =
      write_raw_safetensors("span", R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,8]}})", 8);
  EXPECT_EQ(error_of([&] { nn::read_safetensors(short_span); }),
            "safetensors " + short_span + ": tensor 'w': data_offsets [0, 8) hold 8 bytes but F32[2, 3] needs 24");
  fs::remove(short_span);
  const std::string past_end =
      write_raw_safetensors("end", R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})", 8);
  EXPECT_EQ(error_of([&] { nn::read_safetensors(past_end); }),
            "safetensors " + past_end + ": truncated: tensor 'w' needs bytes [0, 24) but the data section holds 8");
  fs::remove(past_end);
}

TEST(SafetensorsHeader, NotARegularFileIsRefused) {
  EXPECT_EQ(error_of([] { nn::read_safetensors("/dev/zero"); }), "safetensors /dev/zero: is not a regular file");
  const std::string dir = fs::temp_directory_path().string();
  EXPECT_EQ(error_of([&] { nn::read_safetensors(dir); }), "safetensors " + dir + ": is not a regular file");
}
