#include "framework/nn/safetensors.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "framework/core/atomic_file.h"
#include "framework/core/crc32.h"

namespace sparrow::nn {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

using json = nlohmann::ordered_json;
constexpr const char* kMetadataKey = "__metadata__";
// Metadata key prefix of the per-tensor checksums: "crc32.<tensor name>" -> 8 hex digits.
constexpr const char* kChecksumPrefix = "crc32.";
// The reference implementation refuses headers above 100 MB; so do we (a corrupt length would
// otherwise ask for an absurd allocation).
constexpr uint64_t kMaxHeader = 100'000'000;

DType parse_st_dtype(const std::string& path, const std::string& name, const std::string& s) {
  if (s == "F32") return DType::F32;
  if (s == "F64") return DType::F64;
  if (s == "BF16") return DType::BF16;
  if (s == "I32") return DType::I32;
  fail("safetensors ", path, ": tensor '", name, "' has dtype '", s, "' (supported: F32, F64, BF16, I32)");
}

// A tensor's entry in the header, validated.
struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

struct Header {
  std::vector<Entry> entries;  // sorted by begin
  std::map<std::string, std::string> metadata;
  uint64_t data_start;  // file offset of the data section
};

Header read_header(const std::string& path, std::ifstream& in) {
  SPARROW_CHECK(in, "safetensors ", path, ": cannot open for reading (", std::strerror(errno), ")");
  // A directory or a device opens fine and then has no size: refuse it before trusting tellg.
  std::error_code ec;
  SPARROW_CHECK(std::filesystem::is_regular_file(path, ec), "safetensors ", path, ": is not a regular file");
  in.seekg(0, std::ios::end);
  const std::streamoff end = in.tellg();
  SPARROW_CHECK(in && end >= 0, "safetensors ", path, ": cannot read its size");
  const uint64_t file_size = static_cast<uint64_t>(end);
  in.seekg(0);
  SPARROW_CHECK(file_size >= 8, "safetensors ", path, ": truncated: ", file_size, " bytes, no header length");
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  SPARROW_CHECK(in, "safetensors ", path, ": read of the header length failed");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  SPARROW_CHECK(n <= kMaxHeader, "safetensors ", path, ": header length ", n, " is implausible (corrupt file?)");
  SPARROW_CHECK(8 + n <= file_size, "safetensors ", path, ": truncated: header of ", n, " bytes but the file has ",
                file_size, " bytes");
  std::string text(n, '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
  SPARROW_CHECK(in, "safetensors ", path, ": read of the header failed");
  SPARROW_CHECK(!text.empty() && text[0] == '{', "safetensors ", path, ": header does not start with '{'");
  json h;
  try {
    h = json::parse(text);
  } catch (const json::exception& e) {
    fail("safetensors ", path, ": header is not valid JSON: ", e.what());
  }
  SPARROW_CHECK(h.is_object(), "safetensors ", path, ": header is not a JSON object");

  Header out;
  out.data_start = 8 + n;
  const uint64_t data_size = file_size - out.data_start;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == kMetadataKey) {
      SPARROW_CHECK(v.is_object(), "safetensors ", path, ": __metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        SPARROW_CHECK(m.value().is_string(), "safetensors ", path, ": metadata '", m.key(), "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    SPARROW_CHECK(v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"),
                  "safetensors ", path, ": tensor '", name, "' lacks dtype, shape or data_offsets");
    SPARROW_CHECK(v["dtype"].is_string(), "safetensors ", path, ": tensor '", name, "': dtype is not a string");
    Entry e;
    e.name = name;
    e.dtype = parse_st_dtype(path, name, v["dtype"].get<std::string>());
    const json& sh = v["shape"];
    SPARROW_CHECK(sh.is_array(), "safetensors ", path, ": tensor '", name, "': shape is not an array");
    for (const json& d : sh) {
      SPARROW_CHECK(d.is_number_unsigned() && d.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX), "safetensors ",
                    path, ": tensor '", name, "': bad dimension ", d.dump());
      e.shape.push_back(d.get<int64_t>());
    }
    const json& off = v["data_offsets"];
    SPARROW_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
                  "safetensors ", path, ": tensor '", name, "': data_offsets is not [begin, end]");
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    // Checked: a wrapped size (e.g. [2^32, 2^32] -> 0 elements) would match empty data_offsets.
    uint64_t want = 0;
    try {
      want = static_cast<uint64_t>(shape_nbytes(e.shape, dtype_size(e.dtype)));
    } catch (const Error& err) {
      fail("safetensors ", path, ": tensor '", name, "': ", err.what());
    }
    SPARROW_CHECK(e.begin <= e.end && e.end - e.begin == want, "safetensors ", path, ": tensor '", name,
                  "': data_offsets [", e.begin, ", ", e.end, ") hold ", e.end - e.begin, " bytes but ",
                  safetensors_dtype_name(e.dtype), shape_str(e.shape), " needs ", want);
    SPARROW_CHECK(e.end <= data_size, "safetensors ", path, ": truncated: tensor '", name, "' needs bytes [", e.begin,
                  ", ", e.end, ") but the data section holds ", data_size);
    out.entries.push_back(std::move(e));
  }
  std::stable_sort(out.entries.begin(), out.entries.end(),
                   [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  uint64_t covered = 0;
  for (const Entry& e : out.entries) {
    SPARROW_CHECK(e.begin == covered, "safetensors ", path, ": tensor '", e.name, "' starts at byte ", e.begin,
                  " where ", covered, " was expected (hole or overlap in the data section)");
    covered = e.end;
  }
  SPARROW_CHECK(covered == data_size, "safetensors ", path, ": data section has ", data_size,
                " bytes but the tensors cover ", covered);
  return out;
}

void read_into(const std::string& path, std::ifstream& in, const Header& h, const Entry& e, Tensor& host) {
  in.seekg(static_cast<std::streamoff>(h.data_start + e.begin));
  in.read(static_cast<char*>(host.data_ptr()), static_cast<std::streamsize>(e.end - e.begin));
  SPARROW_CHECK(in, "safetensors ", path, ": read of tensor '", e.name, "' failed");
}

// The checksum key of a tensor in __metadata__.
std::string checksum_key(const std::string& name) { return std::string(kChecksumPrefix) + name; }

// Files written by Sparrow carry a checksum per tensor; files from elsewhere carry none and are
// read unverified. Once any checksum is present, every tensor needs one and every checksum a
// tensor (a renamed or dropped tensor is caught here).
bool has_checksums(const std::map<std::string, std::string>& metadata) {
  auto it = metadata.lower_bound(kChecksumPrefix);
  return it != metadata.end() && it->first.rfind(kChecksumPrefix, 0) == 0;
}

void check_checksum_entries(const std::string& path, const Header& h) {
  if (!has_checksums(h.metadata)) return;
  std::set<std::string> names;
  for (const Entry& e : h.entries) {
    names.insert(e.name);
    SPARROW_CHECK(h.metadata.count(checksum_key(e.name)), "safetensors ", path, ": tensor '", e.name,
                  "' has no checksum although the file's other tensors do (corrupt header?)");
  }
  for (auto it = h.metadata.lower_bound(kChecksumPrefix);
       it != h.metadata.end() && it->first.rfind(kChecksumPrefix, 0) == 0; ++it)
    SPARROW_CHECK(names.count(it->first.substr(std::strlen(kChecksumPrefix))), "safetensors ", path,
                  ": a checksum names tensor '", it->first.substr(std::strlen(kChecksumPrefix)),
                  "' that the file does not hold (corrupt header?)");
}

void check_crc(const std::string& path, const Header& h, const Entry& e, uint32_t crc) {
  if (!has_checksums(h.metadata)) return;
  const std::string& want = h.metadata.at(checksum_key(e.name));
  SPARROW_CHECK(want == crc32_hex(crc), "safetensors ", path, ": tensor '", e.name,
                "' fails its checksum (stored crc32 ", want, ", data has ", crc32_hex(crc), "): the file is corrupt");
}

// Streams every tensor's bytes through its checksum before any destination is written.
void verify_all(const std::string& path, std::ifstream& in, const Header& h) {
  if (!has_checksums(h.metadata)) return;
  std::vector<char> buf(1 << 20);
  for (const Entry& e : h.entries) {
    in.seekg(static_cast<std::streamoff>(h.data_start + e.begin));
    uint32_t crc = 0;
    for (uint64_t left = e.end - e.begin; left > 0;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
      in.read(buf.data(), static_cast<std::streamsize>(n));
      SPARROW_CHECK(in, "safetensors ", path, ": read of tensor '", e.name, "' failed");
      crc = crc32(buf.data(), n, crc);
      left -= n;
    }
    check_crc(path, h, e, crc);
  }
}

}  // namespace

bool safetensors_has_checksums(const std::map<std::string, std::string>& metadata) { return has_checksums(metadata); }

const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::BF16:
      return "BF16";
    case DType::I32:
      return "I32";
  }
  return "?";
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // The bytes as written (CPU, contiguous), so each checksum is of exactly what lands in the file.
  NamedTensors host;
  std::set<std::string> seen;
  for (auto& [name, t] : tensors) {
    SPARROW_CHECK(!name.empty() && name != kMetadataKey, "save_safetensors ", path, ": bad tensor name '", name, "'");
    SPARROW_CHECK(seen.insert(name).second, "save_safetensors ", path, ": tensor '", name, "' given twice");
    SPARROW_CHECK(t.defined(), "save_safetensors ", path, ": tensor '", name, "' is undefined");
    if (t.device().is_cpu() && t.is_contiguous()) {
      host.emplace_back(name, t);
    } else {
      Tensor h = empty(t.shape(), t.dtype(), Device::cpu());
      copy_(h, t);
      host.emplace_back(name, h);
    }
  }
  std::map<std::string, std::string> meta = metadata;
  for (auto& [name, t] : host) meta[checksum_key(name)] = crc32_hex(crc32(t.data_ptr(), t.nbytes()));

  json h = json::object();
  json m = json::object();
  for (auto& [k, v] : meta) m[k] = v;
  h[kMetadataKey] = m;
  uint64_t offset = 0;
  for (auto& [name, t] : host) {
    const uint64_t nb = t.nbytes();
    h[name] = {
        {"dtype", safetensors_dtype_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + nb}}};
    offset += nb;
  }
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data section starts 8-aligned
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));

  AtomicFile f(path);
  f.write(len, 8);
  f.write(text);
  for (auto& [name, t] : host)
    if (t.numel() > 0) f.write(t.data_ptr(), t.nbytes());
  f.commit();
}

SafetensorsContents read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  Header h = read_header(path, in);
  check_checksum_entries(path, h);
  SafetensorsContents out;
  out.metadata = h.metadata;
  out.verified = has_checksums(h.metadata);
  for (const Entry& e : h.entries) {
    Tensor t = empty(e.shape, e.dtype, Device::cpu());
    read_into(path, in, h, e, t);
    check_crc(path, h, e, crc32(t.data_ptr(), t.nbytes()));
    out.tensors.emplace_back(e.name, t);
  }
  return out;
}

std::map<std::string, std::string> read_safetensors_metadata(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return read_header(path, in).metadata;
}

std::map<std::string, std::string> load_safetensors_into(const std::string& path, const NamedTensors& dest) {
  std::ifstream in(path, std::ios::binary);
  Header h = read_header(path, in);
  std::map<std::string, const Entry*> by_name;
  for (const Entry& e : h.entries) by_name[e.name] = &e;
  std::set<std::string> wanted;
  std::vector<const Entry*> plan;
  for (auto& [name, t] : dest) {
    wanted.insert(name);
    auto it = by_name.find(name);
    SPARROW_CHECK(it != by_name.end(), "safetensors ", path, ": tensor '", name, "' is missing from the file");
    const Entry& e = *it->second;
    SPARROW_CHECK(e.shape == t.shape(), "safetensors ", path, ": tensor '", name, "' has shape ", shape_str(e.shape),
                  " in the file but ", shape_str(t.shape()), " in the model");
    SPARROW_CHECK(e.dtype == t.dtype(), "safetensors ", path, ": tensor '", name, "' has dtype ",
                  safetensors_dtype_name(e.dtype), " in the file but ", safetensors_dtype_name(t.dtype()),
                  " in the model");
    plan.push_back(&e);
  }
  for (const Entry& e : h.entries)
    SPARROW_CHECK(wanted.count(e.name), "safetensors ", path, ": file holds tensor '", e.name,
                  "' that the model does not have");
  check_checksum_entries(path, h);
  verify_all(path, in, h);
  for (size_t i = 0; i < dest.size(); ++i) {
    Tensor t = dest[i].second;
    if (t.numel() == 0) continue;
    if (t.device().is_cpu() && t.is_contiguous()) {
      read_into(path, in, h, *plan[i], t);
    } else {
      Tensor host = empty(t.shape(), t.dtype(), Device::cpu());
      read_into(path, in, h, *plan[i], host);
      copy_(t, host);
    }
  }
  return h.metadata;
}

}  // namespace sparrow::nn
