// Pictures and summaries of a BlockLayout: what the `attention_layout` tool prints and draws.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "attention/layout/block_layout.h"

namespace sparrow::attn {

// Per-row active blocks over every stored head.
struct RowStats {
  int64_t min = 0, max = 0;
  double mean = 0;
};
RowStats layout_row_stats(const BlockLayout& layout);

// A multi-line, human-readable summary: N, block, nb, active and dense blocks, realised
// sparsity and density, per-row min/mean/max, memory, and the floor note when there is one.
std::string layout_summary(const BlockLayout& layout);

// The picture's colours (RGB).
struct LayoutRgb {
  unsigned char r, g, b;
  bool operator==(const LayoutRgb&) const = default;
};
inline constexpr LayoutRgb kLayoutFull{31, 73, 125};        // an active block every query of which sees every key
inline constexpr LayoutRgb kLayoutPartial{235, 140, 20};    // an active block cut by the causal mask or a ragged tail
inline constexpr LayoutRgb kLayoutInactive{255, 255, 255};  // allowed by the mask, skipped by the layout
inline constexpr LayoutRgb kLayoutMasked{225, 225, 225};    // wholly above the causal diagonal
inline constexpr LayoutRgb kLayoutBoundary{215, 25, 30};    // the causal boundary (key = query), a line
inline constexpr LayoutRgb kLayoutGap{120, 120, 120};       // between heads

struct LayoutPngOptions {
  // Blocks (or pooled tiles) a side at most: when nb > max_blocks, each pixel max-pools an f×f
  // tile of blocks (f = ceil(nb / max_blocks)), so an active block is never lost to the scaling.
  int64_t max_blocks = 2048;
  // Each head's picture is then upscaled by an integer factor to at least this many pixels a side.
  int64_t min_side = 512;
};

// What was drawn.
struct LayoutPngInfo {
  int64_t width = 0, height = 0;  // the whole image
  int64_t tile_side = 0;          // one head's picture: max(rows, columns) in pixels
  int64_t blocks_per_pixel = 1;   // f (pooling)
  int64_t pixels_per_block = 1;   // the integer upscale factor
};

// Draws the given heads side by side (a grey gap between) as an RGB PNG: query blocks down, key
// blocks across; full active blocks dark blue, partial ones (the causal diagonal, a ragged last
// block) orange, inactive allowed blocks white, blocks above the causal diagonal light grey, and
// the causal boundary as a red line. A pooled pixel takes its tile's most telling class (partial,
// then full, then inactive, then masked). Built from the CSR: O(active + pixels). At most 64 heads.
// Throws sparrow::Error on a bad head or option, or when the file cannot be written
// (framework/core/file_io.h write_whole_file: every write checked).
LayoutPngInfo write_layout_png(const BlockLayout& layout, const std::vector<int64_t>& heads, const std::string& path,
                               const LayoutPngOptions& options = {});

// One head; returns the image side in pixels (≥ 512 unless options say otherwise).
int64_t write_layout_png(const BlockLayout& layout, int64_t head, const std::string& path, int64_t max_blocks = 2048);

}  // namespace sparrow::attn
