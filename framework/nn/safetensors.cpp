#include "framework/nn/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

namespace sparrow::nn {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

using json = nlohmann::ordered_json;
constexpr const char* kMetadataKey = "__metadata__";
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
  uint64_t data_start;         // file offset of the data section
};

Header read_header(const std::string& path, std::ifstream& in) {
  SPARROW_CHECK(in, "safetensors ", path, ": cannot open for reading (", std::strerror(errno), ")");
  in.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  SPARROW_CHECK(file_size >= 8, "safetensors ", path, ": truncated: ", file_size, " bytes, no header length");
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  SPARROW_CHECK(n <= kMaxHeader, "safetensors ", path, ": header length ", n, " is implausible (corrupt file?)");
  SPARROW_CHECK(8 + n <= file_size, "safetensors ", path, ": truncated: header of ", n, " bytes but the file has ",
                file_size, " bytes");
  std::string text(n, '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
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
    // Element and byte counts are checked as they grow: a crafted shape (a dimension above
    // 2^63, or a product past 2^64 that wraps to what data_offsets claim) would otherwise pass
    // the size check below and make a tensor larger than its storage.
    uint64_t numel = 1;
    for (const json& d : sh) {
      SPARROW_CHECK(d.is_number_unsigned(), "safetensors ", path, ": tensor '", name, "': bad dimension ", d.dump());
      const uint64_t dim = d.get<uint64_t>();
      SPARROW_CHECK(dim <= static_cast<uint64_t>(INT64_MAX) && !__builtin_mul_overflow(numel, dim, &numel) &&
                        numel <= static_cast<uint64_t>(INT64_MAX),
                    "safetensors ", path, ": tensor '", name, "': shape ", sh.dump(), " is too large");
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    const json& off = v["data_offsets"];
    SPARROW_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
                  "safetensors ", path, ": tensor '", name, "': data_offsets is not [begin, end]");
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    uint64_t want = 0;
    SPARROW_CHECK(!__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(e.dtype)), &want), "safetensors ",
                  path, ": tensor '", name, "': shape ", sh.dump(), " is too large");
    SPARROW_CHECK(e.begin <= e.end && e.end - e.begin == want, "safetensors ", path, ": tensor '", name,
                  "': data_offsets [", e.begin, ", ", e.end, ") hold ", e.end - e.begin, " bytes but ",
                  safetensors_dtype_name(e.dtype), shape_str(e.shape), " needs ", want);
    SPARROW_CHECK(e.end <= data_size, "safetensors ", path, ": truncated: tensor '", name, "' needs bytes [",
                  e.begin, ", ", e.end, ") but the data section holds ", data_size);
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

void write_all(int fd, const void* p, size_t n, const std::string& tmp) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    SPARROW_CHECK(w > 0, "safetensors ", tmp, ": write failed (", std::strerror(errno), ")");
    c += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
  }
  return "?";
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  if (!metadata.empty()) {
    json m = json::object();
    for (auto& [k, v] : metadata) m[k] = v;
    h[kMetadataKey] = m;
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (auto& [name, t] : tensors) {
    SPARROW_CHECK(!name.empty() && name != kMetadataKey, "save_safetensors ", path, ": bad tensor name '", name, "'");
    SPARROW_CHECK(seen.insert(name).second, "save_safetensors ", path, ": tensor '", name, "' given twice");
    SPARROW_CHECK(t.defined(), "save_safetensors ", path, ": tensor '", name, "' is undefined");
    const uint64_t nb = t.nbytes();
    h[name] = {{"dtype", safetensors_dtype_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + nb}}};
    offset += nb;
  }
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data section starts 8-aligned
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));

  const std::filesystem::path final_path(path);
  std::filesystem::path dir = final_path.parent_path();
  if (dir.empty()) dir = ".";
  // Built by appends: GCC 12 warns falsely (-Wrestrict) on "." + std::string.
  std::string tmp_name(1, '.');
  tmp_name.append(final_path.filename().string()).append(".tmp.").append(std::to_string(::getpid()));
  const std::string tmp = (dir / tmp_name).string();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  SPARROW_CHECK(fd >= 0, "save_safetensors ", path, ": cannot create ", tmp, " (", std::strerror(errno), ")");
  try {
    write_all(fd, len, 8, tmp);
    write_all(fd, text.data(), text.size(), tmp);
    for (auto& [name, t] : tensors) {
      if (t.numel() == 0) continue;
      if (t.device().is_cpu() && t.is_contiguous()) {
        write_all(fd, t.data_ptr(), t.nbytes(), tmp);
      } else {
        Tensor host = empty(t.shape(), t.dtype(), Device::cpu());
        copy_(host, t);
        write_all(fd, host.data_ptr(), host.nbytes(), tmp);
      }
    }
    SPARROW_CHECK(::fsync(fd) == 0, "save_safetensors ", tmp, ": fsync failed (", std::strerror(errno), ")");
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail("save_safetensors ", path, ": rename from ", tmp, " failed (", std::strerror(err), ")");
  }
  // Make the rename itself durable.
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

SafetensorsContents read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  Header h = read_header(path, in);
  SafetensorsContents out;
  out.metadata = h.metadata;
  for (const Entry& e : h.entries) {
    Tensor t = empty(e.shape, e.dtype, Device::cpu());
    read_into(path, in, h, e, t);
    out.tensors.emplace_back(e.name, t);
  }
  return out;
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
