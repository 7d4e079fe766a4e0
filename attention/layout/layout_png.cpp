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
  std::snprintf(buf, sizeof buf,
                "active blocks: %lld per head (mean), %lld stored in all; dense blocks: %lld per head\n",
                static_cast<long long>(stored ? L.active_blocks() / stored : 0),
                static_cast<long long>(L.active_blocks()), static_cast<long long>(L.dense_blocks()));
  os << buf;
  std::snprintf(buf, sizeof buf, "realised sparsity: %.4f (target %.4f), density %.4f\n", L.sparsity(),
                L.target_sparsity, L.density());
  os << buf;
  std::snprintf(buf, sizeof buf, "active blocks per row: min %lld, mean %.2f, max %lld\n",
                static_cast<long long>(rs.min), rs.mean, static_cast<long long>(rs.max));
  os << buf;
  os << "layout memory: " << L.memory_bytes() << " bytes\n";
  os << "floor note: " << (L.floor_note.empty() ? "none (target met)" : L.floor_note) << "\n";
  return os.str();
}

namespace {

enum Cell : unsigned char { kCellMasked = 0, kCellInactive = 1, kCellFull = 2, kCellPartial = 3 };

LayoutRgb cell_colour(unsigned char c) {
  switch (c) {
    case kCellMasked:
      return kLayoutMasked;
    case kCellInactive:
      return kLayoutInactive;
    case kCellFull:
      return kLayoutFull;
    default:
      return kLayoutPartial;
  }
}

// Which pooled pixel wins: partial over full over inactive over masked.
unsigned char cell_rank(unsigned char c) { return c == kCellMasked ? 0 : c; }

// One head as cells, one per pooled pixel: rows ph = ceil(nq / f), columns pw = ceil(nk / f).
std::vector<unsigned char> head_cells(const BlockLayout& L, int64_t head, int64_t f, int64_t ph, int64_t pw) {
  const BlockCSR& csr = L.head(head);
  const int64_t nq = L.num_q_blocks, nk = L.num_k_blocks, b = L.block_size;
  const int64_t keys = L.key_len ? L.key_len : L.seq_len;
  std::vector<unsigned char> cells(static_cast<size_t>(ph * pw), kCellInactive);
  if (L.causal)  // a tile wholly above the diagonal: its first key block lies past its last query block
    for (int64_t py = 0; py < ph; ++py) {
      const int64_t last_q = std::min(py * f + f - 1, nq - 1);
      for (int64_t px = 0; px < pw; ++px)
        if (px * f > last_q) cells[py * pw + px] = kCellMasked;
    }
  const bool ragged_q = L.seq_len % b != 0, ragged_k = keys % b != 0;
  for (int64_t r = 0; r < nq; ++r)
    for (int64_t i = csr.row_ptr[r]; i < csr.row_ptr[r + 1]; ++i) {
      const int64_t c = csr.col_idx[i];
      // Partial: some query of block r does not see some key of block c (the causal cut: the
      // block's last key lies past its first query), or the block is short (a ragged tail).
      const int64_t last_key = std::min(c * b + b - 1, keys - 1);
      const bool partial = (L.causal && last_key > r * b) || (ragged_q && r == nq - 1) || (ragged_k && c == nk - 1);
      const unsigned char cell = partial ? kCellPartial : kCellFull;
      unsigned char& dst = cells[(r / f) * pw + c / f];
      if (cell_rank(cell) > cell_rank(dst)) dst = cell;
    }
  return cells;
}

}  // namespace

LayoutPngInfo write_layout_png(const BlockLayout& L, const std::vector<int64_t>& heads, const std::string& path,
                               const LayoutPngOptions& opt) {
  SPARROW_CHECK(opt.max_blocks >= 1, "write_layout_png: max_blocks must be >= 1, got ", opt.max_blocks);
  SPARROW_CHECK(opt.min_side >= 1 && opt.min_side <= 16384, "write_layout_png: min_side must be in [1, 16384], got ",
                opt.min_side);
  SPARROW_CHECK(!L.heads.empty(), "write_layout_png: the layout has no heads");
  SPARROW_CHECK(!heads.empty() && heads.size() <= 64, "write_layout_png: draws 1 to 64 heads, got ", heads.size());
  for (int64_t h : heads)
    SPARROW_CHECK(h >= 0 && (L.heads.size() == 1 || h < static_cast<int64_t>(L.heads.size())),
                  "write_layout_png: head ", h, " outside the layout's ", L.heads.size(), " stored heads");
  const int64_t nq = L.num_q_blocks, nk = L.num_k_blocks;
  LayoutPngInfo info;
  const int64_t f = std::max<int64_t>(1, (std::max(nq, nk) + opt.max_blocks - 1) / opt.max_blocks);
  const int64_t ph = (nq + f - 1) / f, pw = (nk + f - 1) / f;
  const int64_t s = std::max<int64_t>(1, (opt.min_side + std::max(ph, pw) - 1) / std::max(ph, pw));
  const int64_t tile_h = ph * s, tile_w = pw * s;
  const int64_t gap = std::max<int64_t>(4, tile_w / 64);
  const int64_t k = static_cast<int64_t>(heads.size());
  info.blocks_per_pixel = f;
  info.pixels_per_block = s;
  info.tile_side = std::max(tile_h, tile_w);
  info.width = k * tile_w + (k - 1) * gap;
  info.height = tile_h;
  SPARROW_CHECK(info.width <= (int64_t(1) << 17), "write_layout_png: ", k, " heads of ", tile_w,
                " px make an image too wide (", info.width, " px): draw fewer heads or lower max_blocks");

  std::vector<unsigned char> img(static_cast<size_t>(info.width * info.height * 3));
  auto put = [&](int64_t x, int64_t y, LayoutRgb c) {
    unsigned char* p = &img[static_cast<size_t>((y * info.width + x) * 3)];
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
  };
  for (int64_t y = 0; y < info.height; ++y)
    for (int64_t x = 0; x < info.width; ++x) put(x, y, kLayoutGap);
  // The boundary's thickness grows with the upscale so it stays visible, never hiding a block.
  const int64_t line = std::max<int64_t>(1, s / 4);
  for (int64_t t = 0; t < k; ++t) {
    const std::vector<unsigned char> cells = head_cells(L, heads[t], f, ph, pw);
    const int64_t x0 = t * (tile_w + gap);
    for (int64_t y = 0; y < tile_h; ++y)
      for (int64_t x = 0; x < tile_w; ++x) put(x0 + x, y, cell_colour(cells[(y / s) * pw + x / s]));
    // The causal boundary: just right of the pixel diagonal (blocks and pooling are square on
    // both axes), so it runs through the masked half of each diagonal block and never hides a
    // whole one.
    if (L.causal)
      for (int64_t y = 0; y < tile_h; ++y)
        for (int64_t d = 1; d <= line; ++d)
          if (y + d < tile_w) put(x0 + y + d, y, kLayoutBoundary);
  }
  // Encoded in memory, then written with every write, flush and close checked (stb's own file
  // writer ignores them: a PNG "written" to a full disk would be reported as success).
  std::string png;
  const int ok = stbi_write_png_to_func(append_bytes, &png, static_cast<int>(info.width), static_cast<int>(info.height),
                                        3, img.data(), static_cast<int>(info.width * 3));
  SPARROW_CHECK(ok, "write_layout_png: could not encode the picture for ", path);
  write_whole_file(path, png);
  return info;
}

int64_t write_layout_png(const BlockLayout& L, int64_t head, const std::string& path, int64_t max_blocks) {
  LayoutPngOptions opt;
  opt.max_blocks = max_blocks;
  return write_layout_png(L, std::vector<int64_t>{head}, path, opt).tile_side;
}

}  // namespace sparrow::attn
