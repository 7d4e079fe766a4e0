// The layout picture, decoded (stb_image): at least 512 px a side whatever the block count,
// full and partial blocks in their colours, the causal boundary drawn, several heads side by side.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include "attention/attention_config.h"
#include "attention/layout/block_layout.h"
#include "attention/layout/layout_png.h"
#include "attention/layout/patterns.h"
#include "common/paths.h"
#include "framework/core/error.h"

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

using namespace sparrow;
using namespace sparrow::attn;

namespace {

struct Image {
  int w = 0, h = 0;
  std::vector<unsigned char> rgb;
  LayoutRgb at(int x, int y) const {
    const unsigned char* p = &rgb[static_cast<size_t>((y * w + x) * 3)];
    return {p[0], p[1], p[2]};
  }
  int count(LayoutRgb c) const {
    int n = 0;
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) n += at(x, y) == c;
    return n;
  }
};

Image decode(const std::string& path) {
  Image im;
  int channels = 0;
  unsigned char* data = stbi_load(path.c_str(), &im.w, &im.h, &channels, 3);
  if (!data) return im;
  im.rgb.assign(data, data + static_cast<size_t>(im.w) * im.h * 3);
  stbi_image_free(data);
  return im;
}

AttentionConfig bigbird(double sparsity, int64_t block, bool per_head = false) {
  AttentionConfig cfg;
  cfg.backend = "block_sparse";
  cfg.block_size = block;
  cfg.sparsity = sparsity;
  cfg.pattern.names = {"bigbird"};
  cfg.pattern.per_head = per_head;
  return cfg;
}

std::string temp_png(const char* name) { return ::testing::TempDir() + "/" + name + ".png"; }

}  // namespace

TEST(LayoutPng, SmallLayoutIsUpscaledByAnIntegerFactorWithItsColours) {
  // 8 blocks a side (causal, every block active): 64 px a block.
  const BlockLayout L = build_layout(bigbird(0, 16), 128, 1, /*causal=*/true);
  ASSERT_EQ(L.num_q_blocks, 8);
  const std::string path = temp_png("small");
  const LayoutPngInfo info = write_layout_png(L, std::vector<int64_t>{0}, path);
  EXPECT_EQ(info.pixels_per_block, 64);
  EXPECT_EQ(info.blocks_per_pixel, 1);
  const Image im = decode(path);
  ASSERT_EQ(im.w, 512);
  ASSERT_EQ(im.h, 512);
  // Block (3, 1): full; (3, 3): the causal diagonal, partial; (1, 3): above it, masked.
  EXPECT_EQ(im.at(1 * 64 + 32, 3 * 64 + 32), kLayoutFull);
  EXPECT_EQ(im.at(3 * 64 + 8, 3 * 64 + 40), kLayoutPartial);  // below the diagonal of the block
  EXPECT_EQ(im.at(3 * 64 + 32, 1 * 64 + 32), kLayoutMasked);
  EXPECT_EQ(im.at(3 * 64 + 33, 3 * 64 + 32), kLayoutBoundary);  // the line, just right of key = query
  EXPECT_GT(im.count(kLayoutBoundary), 512);
  EXPECT_GT(im.count(kLayoutPartial), 8 * 64 * 64 / 4);
}

TEST(LayoutPng, EveryBlockCountGivesAtLeast512Pixels) {
  for (int64_t seq : {16, 100, 1000, 4096, 16384, 65536}) {
    const BlockLayout L = build_layout(bigbird(seq >= 4096 ? 0.9 : 0, 16), seq, 1, true);
    const std::string path = temp_png("sizes");
    const LayoutPngInfo info = write_layout_png(L, std::vector<int64_t>{0}, path);
    const Image im = decode(path);
    EXPECT_GE(im.w, 512) << seq;
    EXPECT_GE(im.h, 512) << seq;
    EXPECT_LE(im.w, 2 * 2048) << seq;
    EXPECT_EQ(im.w, info.width);
    EXPECT_GT(im.count(kLayoutFull) + im.count(kLayoutPartial), 0) << seq;
    EXPECT_GT(im.count(kLayoutBoundary), 0) << seq;
  }
}

TEST(LayoutPng, RaggedTailIsPartialAndNonCausalHasNoBoundary) {
  // 100 tokens at block 16: 7 blocks, the last 4 tokens long. Non-causal, dense.
  const BlockLayout L = build_layout(bigbird(0, 16), 100, 1, /*causal=*/false);
  const std::string path = temp_png("ragged");
  const LayoutPngInfo info = write_layout_png(L, std::vector<int64_t>{0}, path);
  const Image im = decode(path);
  ASSERT_GE(im.w, 512);
  const int s = static_cast<int>(info.pixels_per_block);
  EXPECT_EQ(im.count(kLayoutBoundary), 0);
  EXPECT_EQ(im.count(kLayoutMasked), 0);
  EXPECT_EQ(im.at(s / 2, s / 2), kLayoutFull);
  EXPECT_EQ(im.at(6 * s + s / 2, s / 2), kLayoutPartial);  // last key block
  EXPECT_EQ(im.at(s / 2, 6 * s + s / 2), kLayoutPartial);  // last query block
  EXPECT_EQ(im.count(kLayoutPartial), (7 + 6) * s * s);
}

TEST(LayoutPng, SeveralHeadsSideBySide) {
  const BlockLayout L = build_layout(bigbird(0.9, 16, /*per_head=*/true), 2048, 4, true);
  ASSERT_EQ(L.heads.size(), 4u);
  const std::string path = temp_png("heads");
  const LayoutPngInfo info = write_layout_png(L, std::vector<int64_t>{0, 1, 2, 3}, path);
  const Image im = decode(path);
  EXPECT_EQ(im.h, info.tile_side);
  EXPECT_GE(im.h, 512);
  EXPECT_GT(im.w, 4 * im.h);  // four tiles and three gaps
  EXPECT_EQ(im.w, info.width);
  // Each tile differs (random blocks differ by head) and each has its boundary.
  const int tile = static_cast<int>(info.tile_side), gap = (im.w - 4 * tile) / 3;
  std::vector<std::vector<unsigned char>> tiles;
  for (int t = 0; t < 4; ++t) {
    std::vector<unsigned char> pixels;
    int boundary = 0;
    for (int y = 0; y < im.h; ++y)
      for (int x = 0; x < tile; ++x) {
        const LayoutRgb c = im.at(t * (tile + gap) + x, y);
        pixels.push_back(c.r);
        boundary += c == kLayoutBoundary;
      }
    EXPECT_GT(boundary, 0) << t;
    tiles.push_back(pixels);
  }
  for (int a = 0; a < 4; ++a)
    for (int b = a + 1; b < 4; ++b) EXPECT_TRUE(tiles[a] != tiles[b]) << a << " vs " << b;
  EXPECT_EQ(im.at(tile + 1, im.h / 2), kLayoutGap);
  EXPECT_THROW(write_layout_png(L, std::vector<int64_t>{4}, path), Error);
  EXPECT_THROW(write_layout_png(L, std::vector<int64_t>{}, path), Error);
}

TEST(LayoutPngCli, PngHeadAllAndList) {
  const std::string path = temp_png("cli");
  for (const std::string& flags : {std::string("--png-head all"), std::string("--png-heads 0,1,2,3")}) {
    const std::string cmd = "timeout 60 " + sparrow::testing::bin_dir() + "/attention_layout" +
                            " --seq 4096 --block 32 --sparsity 0.9 --causal --per-head --heads 4 --png " + path + " " +
                            flags + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[512];
    while (fgets(buf, sizeof buf, p)) out += buf;
    EXPECT_EQ(pclose(p), 0) << out;
    EXPECT_NE(out.find("heads 0,1,2,3"), std::string::npos) << out;
    const Image im = decode(path);
    EXPECT_GE(im.h, 512) << flags;
    EXPECT_GT(im.w, 4 * im.h) << flags;
    EXPECT_GT(im.count(kLayoutPartial), 0);
    EXPECT_GT(im.count(kLayoutFull), 0);
  }
}
