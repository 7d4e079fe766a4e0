// Files that verify themselves: CRC-32 (equal to zlib's), a checksum per tensor in a safetensors
// file's metadata that catches flipped data bits and swapped names, and the atomic file helper
// that replaces files whole or not at all.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "framework/core/atomic_file.h"
#include "framework/core/crc32.h"
#include "framework/core/error.h"
#include "framework/nn/safetensors.h"

namespace fs = std::filesystem;
using namespace sparrow;

namespace {

struct Dir {
  fs::path path;
  Dir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = fs::temp_directory_path() /
           ("sparrow_checksum_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~Dir() { fs::remove_all(path); }
  std::string file(const std::string& n) const { return (path / n).string(); }
};

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
void spit(const std::string& p, const std::string& s) { std::ofstream(p, std::ios::binary | std::ios::trunc) << s; }

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

uint64_t header_len(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[size_t(i)]);
  return n;
}

Tensor iota(int64_t n, float from) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = from + float(i);
  return from_vector(v, {n});
}

}  // namespace

TEST(Crc32, EqualsZlibOnEveryLengthAndAlignment) {
  EXPECT_EQ(crc32(std::string_view("123456789")), 0xCBF43926u);  // the standard check value
  EXPECT_EQ(crc32(nullptr, 0), 0u);
  std::mt19937 rng(1);
  std::vector<unsigned char> buf(1000);
  for (auto& b : buf) b = static_cast<unsigned char>(rng());
  for (size_t off : {0, 1, 3, 7})
    for (size_t n : {0, 1, 7, 8, 9, 63, 64, 65, 500, 993}) {
      const uint32_t z = static_cast<uint32_t>(::crc32(0L, buf.data() + off, static_cast<uInt>(n)));
      EXPECT_EQ(sparrow::crc32(buf.data() + off, n), z) << "offset " << off << " length " << n;
    }
  // Continuation: crc(a + b) == crc(b, crc(a)).
  EXPECT_EQ(sparrow::crc32(buf.data() + 100, 400, sparrow::crc32(buf.data(), 100)), sparrow::crc32(buf.data(), 500));
  EXPECT_EQ(crc32_hex(0xCBF43926u), "cbf43926");
}

TEST(SafetensorsChecksum, EachTensorCarriesZlibsCrcOfItsBytes) {
  Dir d;
  const std::string p = d.file("w.safetensors");
  nn::save_safetensors(p, {{"a", iota(5, 1)}, {"b", iota(3, 10)}}, {{"k", "v"}});
  const std::string bytes = slurp(p);
  const uint64_t n = header_len(bytes);
  nlohmann::json h = nlohmann::json::parse(bytes.substr(8, n));
  for (const char* name : {"a", "b"}) {
    const auto off = h[name]["data_offsets"];
    const std::string data = bytes.substr(8 + n + off[0].get<size_t>(), off[1].get<size_t>() - off[0].get<size_t>());
    char want[9];
    std::snprintf(want, sizeof want, "%08lx",
                  ::crc32(0L, reinterpret_cast<const Bytef*>(data.data()), uInt(data.size())));
    EXPECT_EQ(h["__metadata__"][std::string("crc32.") + name], want) << name;
  }
  EXPECT_EQ(h["__metadata__"]["k"], "v");
  EXPECT_TRUE(nn::read_safetensors(p).verified);
}

TEST(SafetensorsChecksum, AFlippedDataBitIsRefusedNamingFileAndTensorBeforeAnythingIsWritten) {
  Dir d;
  const std::string p = d.file("w.safetensors");
  nn::save_safetensors(p, {{"first", iota(4, 1)}, {"second", iota(4, 100)}});
  std::string bytes = slurp(p);
  bytes[bytes.size() - 5] ^= 0x10;  // inside "second"
  spit(p, bytes);
  std::string msg = error_of([&] { nn::read_safetensors(p); });
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("'second' fails its checksum"), std::string::npos) << msg;
  // load_safetensors_into checks every tensor first: the destinations keep their values.
  Tensor a = zeros({4}), b = zeros({4});
  msg = error_of([&] { nn::load_safetensors_into(p, {{"first", a}, {"second", b}}); });
  EXPECT_NE(msg.find("'second' fails its checksum"), std::string::npos) << msg;
  EXPECT_EQ(a.to_vector(), std::vector<double>(4, 0.0));
  EXPECT_EQ(b.to_vector(), std::vector<double>(4, 0.0));
}

TEST(SafetensorsChecksum, SwappedTensorNamesAreRefused) {
  Dir d;
  const std::string p = d.file("w.safetensors");
  nn::save_safetensors(p, {{"layer.0.w", iota(4, 1)}, {"layer.1.w", iota(4, 50)}});
  std::string bytes = slurp(p);
  const uint64_t n = header_len(bytes);
  std::string header = bytes.substr(8, n);
  // Swap the two entries' names in the tensor part of the header (not in the checksum keys).
  const size_t meta_end = header.find('}') + 1;
  std::string tail = header.substr(meta_end);
  const size_t i0 = tail.find("layer.0.w"), i1 = tail.find("layer.1.w");
  ASSERT_NE(i0, std::string::npos);
  ASSERT_NE(i1, std::string::npos);
  tail[i0 + 6] = '1';
  tail[i1 + 6] = '0';
  spit(p, bytes.substr(0, 8) + header.substr(0, meta_end) + tail + bytes.substr(8 + n));
  const std::string msg = error_of([&] {
    nn::load_safetensors_into(p, {{"layer.0.w", zeros({4})}, {"layer.1.w", zeros({4})}});
  });
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("fails its checksum"), std::string::npos) << msg;
}

TEST(SafetensorsChecksum, FilesWithoutChecksumsStillRead) {
  // A file written elsewhere (no checksums in its metadata): read, marked unverified.
  Dir d;
  const std::string p = d.file("foreign.safetensors");
  std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  const float v[2] = {1.5f, -2.f};
  bytes += header + std::string(reinterpret_cast<const char*>(v), 8);
  spit(p, bytes);
  nn::SafetensorsContents c = nn::read_safetensors(p);
  EXPECT_FALSE(c.verified);
  EXPECT_EQ(c.tensors.at(0).second.to_vector(), (std::vector<double>{1.5, -2}));
}

TEST(AtomicFile, ReplacesWholeOrNotAtAllAndLeavesNoTemp) {
  Dir d;
  const std::string p = d.file("state.json");
  write_file_atomically(p, "old\n");
  {
    AtomicFile f(p);
    f.write("new, but never committed");
    // destroyed without commit(): as a failed write would
  }
  EXPECT_EQ(slurp(p), "old\n");
  write_file_atomically(p, "new\n");
  EXPECT_EQ(slurp(p), "new\n");
  int files = 0;
  for (auto& e : fs::directory_iterator(d.path)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  // A temp file left by a killed writer is recognised and removed.
  spit(d.file(".state.json.tmp.12345"), "torn");
  EXPECT_TRUE(is_atomic_temp_name(".state.json.tmp.12345"));
  EXPECT_FALSE(is_atomic_temp_name("state.json"));
  remove_stale_temp_files(d.path.string());
  EXPECT_FALSE(fs::exists(d.file(".state.json.tmp.12345")));
  EXPECT_EQ(slurp(p), "new\n");
  // A folder that cannot be written: one line naming the file.
  const std::string msg = error_of([&] { write_file_atomically(d.file("no/such/dir/x"), "x"); });
  EXPECT_NE(msg.find("no/such/dir/x"), std::string::npos) << msg;
}
