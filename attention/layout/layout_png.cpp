// Layout pictures (stb_image_write) and summaries.
#include "attention/layout/layout_png.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <sstream>
#include <vector>

#include "framework/core/error.h"
#include "framework/core/file_io.h"

// Static linkage: other libraries of the program may carry their own copy of stb_image_write.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace sparrow::attn {

namespace {

// stb_image_write's output callback: appends to the std::string in `context`.
void append_bytes(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
}

}  // namespace

RowStats layout_row_stats(const BlockLayout& layout) {
  RowStats s;
  int64_t rows = 0, total = 0;
  s.min = std::numeric_limits<int64_t>::max();
  for (const BlockCSR& h : layout.heads)
    for (size_t r = 0; r + 1 < h.row_ptr.size(); ++r) {
      const int64_t n = h.row_ptr[r + 1] - h.row_ptr[r];
      s.min = std::min(s.min, n);
      s.max = std::max(s.max, n);
      total += n;
      ++rows;
    }
  if (rows == 0) s.min = 0;
  s.mean = rows ? static_cast<double>(total) / static_cast<double>(rows) : 0.0;
  return s;
}

std::string layout_summary(const BlockLayout& L) {
  const RowStats rs = layout_row_stats(L);
  const int64_t stored = static_cast<int64_t>(L.heads.size());
  const int64_t last = L.seq_len - (L.num_q_blocks - 1) * L.block_size;
  char buf[512];
  std::ostringstream os;
  os << "layout: " << L.description << "\n";
  os << "N " << L.seq_len << ", block " << L.block_size << ", nb " << L.num_q_blocks;
  if (last != L.block_size) os << " (last block ragged: " << last << " tokens)";
  os << (L.causal ? ", causal" : ", non-causal") << "\n";
  os << "stored layouts: " << stored << (stored == 1 ? " (shared by all heads)" : " (one per head)") << "\n";
  std::snprintf(buf, sizeof buf, "active blocks: %lld per head (mean), %lld stored in all; dense blocks: %lld per head\n",
                static_cast<long long>(stored ? L.active_blocks() / stored : 0),
                static_cast<long long>(L.active_blocks()), static_cast<long long>(L.dense_blocks()));
  os << buf;
  std::snprintf(buf, sizeof buf, "realised sparsity: %.4f (target %.4f), density %.4f\n", L.sparsity(),
                L.target_sparsity, L.density());
  os << buf;
  std::snprintf(buf, sizeof buf, "active blocks per row: min %lld, mean %.2f, max %lld\n", static_cast<long long>(rs.min),
                rs.mean, static_cast<long long>(rs.max));
  os << buf;
  os << "layout memory: " << L.memory_bytes() << " bytes\n";
  os << "floor note: " << (L.floor_note.empty() ? "none (target met)" : L.floor_note) << "\n";
  return os.str();
}

int64_t write_layout_png(const BlockLayout& L, int64_t head, const std::string& path, int64_t max_side) {
  SPARROW_CHECK(max_side >= 1, "write_layout_png: max_side must be >= 1, got ", max_side);
  SPARROW_CHECK(!L.heads.empty(), "write_layout_png: the layout has no heads");
  const BlockCSR& csr = L.head(head);
  const int64_t nq = L.num_q_blocks, nk = L.num_k_blocks;
  const int64_t f = std::max<int64_t>(1, (std::max(nq, nk) + max_side - 1) / max_side);  // blocks per pixel
  const int64_t h = (nq + f - 1) / f, w = (nk + f - 1) / f;
  constexpr unsigned char kActive = 20, kAllowed = 255, kMasked = 225;
  std::vector<unsigned char> img(static_cast<size_t>(h * w), kAllowed);
  if (L.causal)  // a tile wholly above the diagonal: its first key block lies past its last query block
    for (int64_t py = 0; py < h; ++py) {
      const int64_t last_q = std::min(py * f + f - 1, nq - 1);
      for (int64_t px = 0; px < w; ++px)
        if (px * f > last_q) img[py * w + px] = kMasked;
    }
  for (int64_t r = 0; r < nq; ++r)
    for (int64_t i = csr.row_ptr[r]; i < csr.row_ptr[r + 1]; ++i) img[(r / f) * w + csr.col_idx[i] / f] = kActive;
  // Encoded in memory, then written with every write, flush and close checked (stb's own file
  // writer ignores them: a PNG "written" to a full disk would be reported as success).
  std::string png;
  const int ok = stbi_write_png_to_func(append_bytes, &png, static_cast<int>(w), static_cast<int>(h), 1, img.data(),
                                        static_cast<int>(w));
  SPARROW_CHECK(ok, "write_layout_png: could not encode the picture for ", path);
  write_whole_file(path, png);
  return std::max(h, w);
}

}  // namespace sparrow::attn
