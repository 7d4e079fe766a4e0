// Pictures and summaries of a BlockLayout: what the `attention_layout` tool prints and draws.
#pragma once
#include <cstdint>
#include <string>

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

// Draws head `head` as a grayscale PNG: one pixel per (query block, key block), query blocks
// down, key blocks across; active blocks dark, inactive white, the causal upper triangle light
// grey. When nb > max_side, each pixel max-pools a f×f tile of blocks (f = ceil(nb / max_side)),
// so an active block is never lost to the scaling. Built from the CSR: O(active + pixels).
// Throws sparrow::Error when the file cannot be written. Returns the image side in pixels.
int64_t write_layout_png(const BlockLayout& layout, int64_t head, const std::string& path, int64_t max_side = 2048);

}  // namespace sparrow::attn
